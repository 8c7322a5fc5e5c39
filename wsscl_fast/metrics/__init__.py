"""Unlearning metrics.

- :mod:`.salun`: the SalUn protocol's population averages of one model (UA, RA, TA,
  MIA-efficacy, Avg. Gap to one Retrain).
- :mod:`.oracle`: per-example distances between an ensemble of unlearned models and an
  ensemble of retrained oracles (KLoM, the NeurIPS 2023 challenge score).
- :mod:`.intervals`: bootstrap intervals over models, paired comparisons.
- :mod:`.logits`: a model's logits over a dataset, for those distances.
"""
from .intervals import bootstrap, interval, verdict
from .logits import logits_on
from .oracle import attack_epsilons, bucket_points, challenge_score, klom, margins, prediction_kl, summarize
from .salun import GAP_METRICS, SplitPredictions, avg_gap, evaluate_unlearning, mia_efficacy, predict_split

__all__ = ["GAP_METRICS", "SplitPredictions", "attack_epsilons", "avg_gap", "bootstrap", "bucket_points",
           "challenge_score", "evaluate_unlearning", "interval", "klom", "logits_on", "margins", "mia_efficacy",
           "predict_split", "prediction_kl", "summarize", "verdict"]
