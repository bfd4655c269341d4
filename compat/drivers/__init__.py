"""One driver per framework, each run by that framework's own venv; flow.py is what they share."""
