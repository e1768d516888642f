"""What a trained run gets right and wrong on its test split, without torch: the
kept predictions (``predictions.npz``), the metrics computed from them with
scikit-learn (``evaluation.json``) and the plots drawn from those."""
