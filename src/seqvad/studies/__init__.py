"""The paper's studies, re-run with seeds and intervals (issue 15).

* :mod:`seqvad.studies.plan`: what each study trains (``orders``, ``losses``, ``phases``) and
  the per-run budget, fixed before any result;
* :mod:`seqvad.studies.runner`: runs every (variant, seed) once, resumably, one JSON each;
* :mod:`seqvad.studies.stats`: bootstrap intervals and paired comparisons across seeds;
* :mod:`seqvad.studies.report`: the tables in the paper's layout, verdicts and figures.

``seqvad study NAME --root PATH`` runs one study and writes its report.
"""
