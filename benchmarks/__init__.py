"""The provider's benchmarks: ``make bench`` (``python -m benchmarks``).

Five sections, one module each, sharing the machinery of :mod:`benchmarks.harness`:

- :mod:`benchmarks.triggerer_scale`: thousands of ``PredictionTrigger.run()`` in one event loop;
- :mod:`benchmarks.poll_schedule`: requests per prediction of the adaptive poll schedule;
- :mod:`benchmarks.parse_cost`: what importing ``LipsyncOperator`` adds to DAG parsing;
- :mod:`benchmarks.media_transfer`: 1 GiB through the hook, against ``curl``;
- :mod:`benchmarks.worker_slot`: worker-slot seconds of a deferrable task in a real Airflow.

Every figure is a ratio against a baseline measured in the same run, because these machines are
noisy and only side-by-side comparisons mean anything; absolute values are shown beside the ratios.
"""
