"""Gate ``cost``: what serving the model costs, from what ``load_test`` measured, against the tier's budget.

Inputs: the manifest's ``serving`` section (``instance_price_per_hour``, ``instance_type``, ``instances``,
``expected_traffic_rps``; ``kpi.metric`` names the costs in the message) and, in ``extra``:
``earlier_gates["load_test"]["metrics"]["load_test.sustainable_rps"]`` (the rate sustained under the SLO),
``price_table`` (``configs/prices.yaml`` as ``{instance_type: USD per hour}``) and ``preflight``.
The arithmetic is in :mod:`gates.cost.arithmetic`; ``docs/load_test.md`` explains both gates.

Check ids (stable):

==================  ==========================================================================================
``price``           where the price per instance-hour came from (manifest, price table, the tier's default);
                    none → fail (``require_price``) or skipped
``cost_per_1000``   USD per 1,000 predictions at the sustainable rate, warn / fail when ``>=`` the budget
``cost_per_month``  USD per month at the expected traffic, likewise; no expected traffic → fail
                    (``require_traffic``) or skipped
==================  ==========================================================================================

No sustainable rate (load_test did not run, or its SLO fail levels did not hold) → both costs ``error``
("nothing measured"); in a pre-flight with no load test they are ``skipped``.

Metrics: ``cost.per_1000``, ``cost.per_month``, ``cost.instances_needed``, ``cost.price_per_hour``,
``cost.instances`` (as tested) and ``load_test.sustainable_rps`` (the rate used).

Importing ``gates.cost.gate`` registers the gate (:mod:`gates.builtin` does); the package itself
imports nothing, so that reading a config (``gates.cost.config``) does not load the whole gate.
"""
