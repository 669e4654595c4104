"""report stage: HTML and markdown that show what the numbers mean.

``load`` finds result directories by their ``kind``; ``table`` builds the models x benchmarks
summary (one column per benchmark version); ``markdown`` and ``html`` render it, the HTML with
``charts`` (inline SVG), ``compare`` (gained/lost problems), ``breakdown`` (pass@1 by problem
group), ``stages`` (curation, training, merge stats) and ``mdhtml`` (the stage cards).
"""
