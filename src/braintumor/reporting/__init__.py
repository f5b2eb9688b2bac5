"""What the study shows: figures (:mod:`~braintumor.reporting.plots`), the README's
generated blocks (:mod:`~braintumor.reporting.readme`) and provenance
(:mod:`~braintumor.reporting.provenance`)."""
