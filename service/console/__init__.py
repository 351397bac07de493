"""The agent console: review, rate and correct answers; insight; export; retraining."""
