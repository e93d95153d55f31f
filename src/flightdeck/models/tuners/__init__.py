"""Hyperparameter optimization (checklist 3.5): the tuners that propose each trial's settings for ``flightdeck tune``
(Optuna, Hyperopt, Ray Tune, grid or random search), behind one protocol (:mod:`.base`)."""
