@model:scripted/careful @model:scripted/hasty
Feature: Two bankers compared offline
  The same scenarios, run once per model: `scripted/careful` checks the balance and asks
  before it moves money, `scripted/hasty` moves it at once. Both are named scripted models
  (features/scripted_model.toml), so the leaderboard and the scenario x model matrix of the
  report work with no key; run it against real models with
  -D aitest.models=openai/gpt-4.1-mini,anthropic/claude-sonnet-4-5.

  Background:
    Given the agent "banker"

  Scenario: Move money to savings
    When the user says "Please move $100 to savings."
    And the user says "Yes, go ahead."
    Then the agent called tool "transfer" during the conversation with:
      | argument   | value   |
      | to_account | savings |
      | amount     | 100     |

  Scenario: Look at the balances
    When the user says "What are my balances?"
    Then the agent called tool "get_all_balances"
    And the response mentions "checking"
