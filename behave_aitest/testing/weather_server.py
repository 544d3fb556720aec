"""Fake weather as an MCP server ("weather"): current conditions and forecasts.

The data is fixed and made up (no network, no clock): the same question always gets the
same answer, so tests and examples are reproducible. Forecasts start tomorrow; in Paris
tomorrow brings an 80% chance of rain.

Run it with ``python -m behave_aitest.testing.weather_server [--transport stdio|streamable-http|sse]
[--host 127.0.0.1] [--port N]``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from behave_aitest.testing._serve import run, text_tool

MAX_FORECAST_DAYS = 7


@dataclass(frozen=True)
class Current:
    temp_c: int
    conditions: str
    humidity: int
    wind_kmh: int
    wind_from: str


@dataclass(frozen=True)
class Day:
    high_c: int
    low_c: int
    conditions: str
    rain_chance: int


@dataclass(frozen=True)
class City:
    name: str
    country: str
    current: Current
    forecast: tuple[Day, ...]  # tomorrow first; MAX_FORECAST_DAYS entries


CITIES: dict[str, City] = {
    c.name.lower(): c
    for c in (
        City(
            "Paris",
            "France",
            Current(18, "partly cloudy", 65, 14, "west"),
            (
                Day(16, 11, "rain", 80),
                Day(17, 10, "showers", 40),
                Day(19, 11, "partly cloudy", 20),
                Day(21, 12, "sunny", 5),
                Day(22, 13, "sunny", 0),
                Day(20, 13, "cloudy", 30),
                Day(18, 12, "light rain", 60),
            ),
        ),
        City(
            "London",
            "United Kingdom",
            Current(14, "overcast", 78, 20, "south-west"),
            (
                Day(15, 9, "light rain", 60),
                Day(14, 8, "showers", 55),
                Day(16, 9, "cloudy", 25),
                Day(17, 10, "partly cloudy", 15),
                Day(15, 10, "rain", 70),
                Day(14, 8, "cloudy", 35),
                Day(16, 9, "sunny intervals", 10),
            ),
        ),
        City(
            "New York",
            "United States",
            Current(22, "sunny", 50, 10, "south"),
            (
                Day(25, 17, "sunny", 5),
                Day(27, 19, "partly cloudy", 10),
                Day(24, 18, "thunderstorms", 70),
                Day(22, 16, "cloudy", 30),
                Day(23, 15, "sunny", 0),
                Day(26, 18, "sunny", 5),
                Day(25, 19, "partly cloudy", 15),
            ),
        ),
        City(
            "Tokyo",
            "Japan",
            Current(26, "humid and hazy", 80, 8, "south-east"),
            (
                Day(28, 22, "cloudy", 35),
                Day(27, 22, "rain", 85),
                Day(29, 23, "partly cloudy", 20),
                Day(30, 24, "sunny", 10),
                Day(29, 23, "showers", 50),
                Day(28, 22, "cloudy", 40),
                Day(30, 24, "sunny", 5),
            ),
        ),
        City(
            "Berlin",
            "Germany",
            Current(12, "cloudy", 70, 18, "north-west"),
            (
                Day(13, 6, "cloudy", 25),
                Day(11, 5, "light rain", 65),
                Day(12, 4, "partly cloudy", 15),
                Day(14, 6, "sunny", 5),
                Day(15, 7, "sunny", 0),
                Day(13, 7, "showers", 45),
                Day(12, 6, "cloudy", 30),
            ),
        ),
        City(
            "Sydney",
            "Australia",
            Current(24, "sunny", 55, 16, "east"),
            (
                Day(25, 17, "sunny", 0),
                Day(26, 18, "sunny", 5),
                Day(23, 17, "showers", 60),
                Day(22, 16, "partly cloudy", 20),
                Day(24, 17, "sunny", 5),
                Day(25, 18, "sunny", 0),
                Day(23, 17, "cloudy", 25),
            ),
        ),
        City(
            "Madrid",
            "Spain",
            Current(29, "clear", 30, 9, "south"),
            (
                Day(31, 17, "sunny", 0),
                Day(32, 18, "sunny", 0),
                Day(30, 17, "clear", 5),
                Day(28, 16, "partly cloudy", 10),
                Day(29, 16, "sunny", 0),
                Day(31, 18, "sunny", 0),
                Day(30, 17, "sunny", 5),
            ),
        ),
    )
}

KNOWN_CITIES = ", ".join(c.name for c in CITIES.values())


def find_city(name: str) -> City:
    """The city called ``name`` (case-insensitive; "Paris, France" works too); ToolError if unknown."""
    key = name.split(",")[0].strip().lower()
    if key in ("nyc", "new york city"):
        key = "new york"
    city = CITIES.get(key)
    if city is None:
        raise ToolError(f"Unknown city '{name}'. Known cities: {KNOWN_CITIES}")
    return city


def day_label(index: int) -> str:
    return {0: "Tomorrow", 1: "Day after tomorrow"}.get(index, f"In {index + 1} days")


def current_weather(city_name: str) -> str:
    city = find_city(city_name)
    now = city.current
    return (
        f"{city.name}, {city.country}: {now.temp_c}°C, {now.conditions}, humidity {now.humidity}%, "
        f"wind {now.wind_kmh} km/h from the {now.wind_from}."
    )


def forecast(city_name: str, days: int = 1) -> str:
    city = find_city(city_name)
    if not 1 <= days <= MAX_FORECAST_DAYS:
        raise ToolError(f"days must be between 1 and {MAX_FORECAST_DAYS}, got {days}.")
    lines = [f"Forecast for {city.name}, {city.country} ({days} day{'s' if days > 1 else ''}, starting tomorrow):"]
    for i, day in enumerate(city.forecast[:days]):
        lines.append(
            f"{day_label(i)}: {day.conditions}, high {day.high_c}°C, low {day.low_c}°C, {day.rain_chance}% chance of rain"
        )
    return "\n".join(lines)


def create_server() -> MCPServer:
    """A new weather server (its data never changes)."""
    server = MCPServer(
        "weather",
        instructions=f"Current weather and forecasts for these cities: {KNOWN_CITIES}. Temperatures are in °C.",
    )
    tool = text_tool(server)

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city: temperature (°C), conditions, humidity and wind.

        Args:
            city: The city name, e.g. "Paris".
        """
        return current_weather(city)

    @tool
    def get_forecast(city: str, days: int = 1) -> str:
        """Get the daily forecast for a city, starting tomorrow: one line per day with the
        conditions, high and low temperature (°C) and the chance of rain.

        Args:
            city: The city name, e.g. "Paris".
            days: How many days to forecast, 1 (tomorrow only, the default) to 7.
        """
        return forecast(city, days)

    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: ``python -m behave_aitest.testing.weather_server --help``."""
    return run(create_server(), argv, prog="python -m behave_aitest.testing.weather_server")


if __name__ == "__main__":
    sys.exit(main())
