"""Answer evaluation: base, prompted, tuned and tuned+prompted variants on one question set."""
