Feature: A customer played by a simulated user
  The customer is not a script: a model plays it from a persona (here the built-in scripted
  model `scripted/customer`, so it runs offline; change the @user_model tag to let an LLM
  play it, e.g. @user_model:openai/gpt-4.1-mini). It sees the banker's answers, never its tools.
  The judge is scripted too (`scripted/judge`, a regex over the conversation, not an LLM's
  judgement): drop @judge:scripted/judge to let a real model judge.

  @user_model:scripted/customer @judge:scripted/judge
  Scenario: A customer who does not give the amount up front
    Given the agent "banker"
    When the user says "Hi, I'm saving for a trip to Lisbon."
    And a simulated user talks to the agent for at most 6 turns:
      """
      You are a customer of the bank. You want to move money to savings for the trip,
      but you only give the amount (200 dollars) when the assistant asks for it.
      """
    Then the simulated user reached its goal
    And the agent called tool "transfer" during the conversation
    And the agent called tool "transfer" with:
      | argument | value   |
      | amount   | 200     |
      | memo     | trip to Lisbon |
    And the response mentions "$200"
    And the conversation satisfies "the assistant asked for the amount before transferring"
