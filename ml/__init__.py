"""Models behind the closed loop: features, xgboost models, explanations, registry, jobs.

Data in: frames in the history contract (ml.contract) from core.history or a test source.
- ml.features: one pipeline for training and scoring (equipment windows, lots)
- ml.models: failure-within-horizon, RUL, scrap, quality, anomaly; vectorised scoring
- ml.explain: top pred_contribs per prediction, named by signal, value, baseline, unit
- ml.registry / ml.drift: versioned models (champion/challenger/retired), PSI drift
- ml.jobs: APScheduler scoring/retraining/drift jobs, training in a process pool
- ml.cmapss: the RUL pipeline on NASA C-MAPSS; ml.synthetic: a seeded run-to-failure plant
"""
