@session
Feature: Weather chat keeps the city in mind
  A follow-up question ("What about tomorrow?") only makes sense with the
  earlier turns: the agent must remember the city and the forecast.

  Background:
    Given the agent "forecaster"

  Scenario: Current weather
    When the user says "What's the weather in Paris?"
    Then the agent called tool "get_weather" with:
      | argument | value |
      | city     | Paris |
    And the response mentions "Paris"

  Scenario: Tomorrow
    When the user says "What about tomorrow?"
    Then the agent called tool "get_forecast"
    And the agent called tool "get_forecast" with:
      | argument | value |
      | city     | Paris |

  Scenario: Umbrella
    When the user says "Should I bring an umbrella?"
    Then the agent called no tools
    And the response mentions "umbrella"
    And the response matches "\d+% chance of rain"
