"""The Textual dashboard (``ml dashboard``): a thin view over ``vml.api``."""
