"""The shortcut audit: what, other than the tumour, tells the classes apart?

* :mod:`~braintumor.audit.representations`: the image variants and features probes fit on;
* :mod:`~braintumor.audit.probes`: fitting, the controls, the runner and the report;
* :mod:`~braintumor.audit.figures`: its figures.
"""
