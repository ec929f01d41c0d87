"""Files the stages hand to each other and to DVC, and what a refused write means."""
