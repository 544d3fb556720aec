@session @cli
Feature: A CLI agent remembers a savings goal
  The agent is bankers/cli_banker.py, a program run once per turn (command = ...).
  The Gherkin is the built-in loop's (features/banking_session.feature): three scenarios,
  one conversation, one bank server process behind behave-aitest's MCP endpoint.

  Background:
    Given the agent "cli_banker"

  Scenario: Check balances
    When the user says "I'm saving for a trip to Paris. What are my balances?"
    Then the agent called tool "get_all_balances"
    And the response mentions "checking"

  Scenario: Transfer for that trip
    When the user says "Transfer $500 to savings for that trip I mentioned."
    Then the agent called tool "transfer" with:
      | argument     | value    |
      | from_account | checking |
      | to_account   | savings  |
      | amount       | 500      |
    And no tool call failed

  Scenario: Remember the goal
    When the user says "What was I saving for again, and what is in savings now?"
    Then the response mentions "Paris"
    And the response mentions "3,700.00"
    And the agent did not call tool "transfer"
