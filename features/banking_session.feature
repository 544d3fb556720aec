@session
Feature: Banking assistant remembers a savings goal
  The three scenarios are one conversation with one bank server process: the
  transfer made in the second scenario is visible in the third, and the goal
  mentioned in the first is only known from the conversation's history.

  Background:
    Given the agent "banker"

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
