"""Gate ``data_check``: the candidate's datasets meet their contracts and have not drifted from the reference.

Inputs: the manifest's ``DatasetRef`` list of the version (role, uri, sha256, contract) and, per role,
a :class:`~gates.data_check.models.DatasetLocator` in ``GateInputs.datasets`` (prepared by
``tasks/datasets.py``). Optional ``GateInputs.extra``: ``evidence_dir`` (where the JSON table and
PNG go; a temp dir otherwise), ``now`` (ISO time for freshness; the current time otherwise) and
``threads`` (columns processed at once; default one per CPU, at most 4).

Check ids (stable; ``<role>`` is the dataset role, ``<col>`` a column):

==========================  =========================================================
``dataset:<role>``          the flow resolved the dataset (error when not given)
``digest:<role>``           observed sha256 == manifest sha256
``contract:<role>``         the contract is valid (error) / present when required (fail)
``readable:<role>``         files exist and parse (fail: not found / unreadable; error: unreachable)
``rows:<role>``             row count >= contract ``min_rows`` (default 1: empty is a failure)
``column:<role>:<col>``     a contract column exists
``type:<role>:<col>``       and has the declared type
``contract_column:<role>:<col>``  a column the contract names as key/label/event time exists
``extra_columns:<role>``    no undeclared columns (``strict_columns: true``)
``null_rate:<role>:<col>``  null (or NaN) share <= ``max_null_rate`` (0 if ``nullable: false``)
``range:<role>:<col>``      count of values outside ``[min, max]`` == 0
``categories:<role>:<col>`` count of values outside ``categories`` == 0
``unique_key:<role>``       count of rows whose ``key`` occurs more than once == 0
``label_nulls:<role>`` / ``label_values:<role>`` / ``label_balance:<role>``
``freshness:<role>``        now - newest ``event_time`` <= ``max_age``
``reference``               a reference dataset exists (fail only with ``require_reference``)
``dtype:<role>:<col>``      a drift column holds the reference's kind of values (number, string, bool, time)
``psi:<role>:<col>``        PSI vs reference (numeric: reference-quantile bins; categorical:
                            categories, unseen ones in their own bin) against warn/fail levels
``ks:<role>:<col>``         two-sample KS statistic D (numeric), p-value in the message; ``psi``/``ks`` are
                            errors when drift cannot be measured, skipped when the types differ
``read:<role>:<col>``       a column could not be read (error)
==========================  =========================================================

Modules: :mod:`~gates.data_check.gate` (the registered gate), :mod:`~gates.data_check.run` (one
evaluation, step by step), :mod:`~gates.data_check.datasets` and :mod:`~gates.data_check.columns`
(its per-dataset and per-column steps), then the pieces they use: ``models``, ``reader``, ``scan``,
``checks``, ``drift``, ``stats``, ``ksdist`` and ``evidence``.

Importing ``gates.data_check.gate`` registers the gate (:mod:`gates.builtin` does); the package itself
imports nothing, so that reading its config model (``gates.data_check.models``) does not load the whole gate.
"""
