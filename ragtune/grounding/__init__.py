"""Grounding: how an answer is made from the company's documents, in one place.

Serving, training and evaluation all use this package, and nothing else cuts sentences, picks
evidence, decides a hand-off, composes an extractive answer or verifies a generated one:

- text.py: the one sentence splitter and the structure of a chunk (sentences, list items, rows);
- features.py, model.py, evidence.py: the learned evidence selector;
- answerability.py: answer or hand off (calibrated answerability, the question's intent);
- compose.py: the extractive answer a support agent would write;
- verify.py: checks of a generated answer against the evidence;
- messages.py: hand-off texts in the customer's language;
- followup.py: a follow-up question resolved against the conversation.
"""
