"""Observations, conversation summaries and Recall: the memory an agent reads before it answers."""
