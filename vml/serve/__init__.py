"""``ml serve``: a model's predictions over HTTP."""
