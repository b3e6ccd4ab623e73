"""Gate ``compliance_review``: what the humans who sign off need to know, judged from evidence.

What it checks (``docs/compliance_review.md`` has the details, the config and the evidence file):

- **model card** — the manifest's ``model_card`` section or the bundle's Markdown card: the sections
  the tier requires written (no placeholders, no one-word answers), its risk tier the manifest's;
- **fairness** — on the ``predictions`` dataset, per protected attribute (and intersection): group
  sizes, selection rates, TPR/FPR, demographic parity and equalized odds (Fairlearn-equal);
- **personal data** — every dataset scanned (vectorised) for emails, phones, SSNs, cards, IBANs, IPs
  and dates of birth; undeclared personal data fails; examples masked, never raw;
- **lineage** — artifacts and datasets pinned, training code revision and run recorded;
- **business case** — the KPI complete, evaluation metrics from the predictions, no worse than the
  model in production beyond the tolerance;
- **regulatory** — the controls the tags select (``configs/regulatory.yaml``) have their evidence;
- **readiness** — the scorecard of the factors that decide whether a model survives the POC.

Inputs (``GateInputs``; prepared by the flow's tasks, or ``tasks/preflight.py`` for ``clearance gate
run``): ``manifest``, ``version``, ``datasets`` (role → DatasetLocator; ``predictions`` for fairness and
metrics, every role for personal data) and, in ``extra``: ``model_card_markdown``, ``earlier_gates``,
``champion``, ``regulatory_map``, ``regulatory_tags``, ``now``, ``evidence_dir``.

Check ids (stable; reported in this order):

=====================================  ========================================================
``model_card``                         a card was read (fail: none; error: over the size limit)
``model_card:<section>``               a required section written (fail) / an optional one defective (warn)
``model_card:risk_tier_matches``       the card's risk tier is the manifest's
``model_card:duplicate_headings``      a Markdown heading appears more than once (warn)
``fairness``                           skipped (no evaluation / predictions) or fail when required; error
``fairness:<attr>:<metric>``           demographic parity / equalized odds difference and ratio vs levels
``personal_data``                      the scan ran: columns scanned and flagged
``personal_data:<role>``               error: that dataset could not be read
``personal_data:<role>:<column>``      personal data found (undeclared: fail) or declared (needs basis+retention)
``lineage:artifact:<key>``             the artifact is pinned by sha256
``lineage:dataset:<role>:<uri>``       the dataset is pinned (train/reference: fail, else warn)
``lineage:code_revision``              a full 40-hex git commit
``lineage:training_run``               a training run id
``kpi`` / ``kpi:<field>``              metric, baseline, target, owner, review_date
``business:metrics``                   AUC, precision, recall, ECE from the predictions
``business:champion``                  error: the production model's evidence could not be read
``business:champion:<metric>``         no worse than the champion beyond the tolerance
``regulatory``                         skipped (no tags) / error (no or invalid mapping file)
``regulatory:<tag>``                   error: the mapping file does not know this tag
``regulatory:<tag>:<control>``         the control's evidence is all there
``readiness:<factor>``                 one per scorecard factor, last
=====================================  ========================================================

Modules: :mod:`~gates.compliance_review.gate` (the registered gate and its concerns),
:mod:`~gates.compliance_review.config`, :mod:`~gates.compliance_review.context`,
:mod:`~gates.compliance_review.evidence`; the pure pieces ``model_card``, ``fairness``,
``personal_data``, ``lineage``, ``business_case``, ``regulatory``, ``readiness``.

Importing ``gates.compliance_review.gate`` registers the gate (:mod:`gates.builtin` does); the package itself
imports nothing, so that reading a config (``gates.compliance_review.config``) does not load the whole gate.
"""
