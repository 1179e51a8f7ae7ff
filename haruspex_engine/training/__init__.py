"""Training data for the Haruspex network: labels painted from a deposited model and 70³ training segments."""
