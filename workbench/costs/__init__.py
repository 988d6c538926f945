"""Costs: a dated price book, scenarios month by month, sensitivity, the live bucket's bill, run receipts.

Start with :func:`workbench.costs.pricebook.load`, :class:`workbench.costs.scenarios.Usage` and
:func:`workbench.costs.scenarios.monthly_costs`; ``notebooks/05_costs.ipynb`` shows them all.
"""
