"""What a run's row holds: the states a run can be in, its metric columns."""

# The run states, in the order a run can pass through them. ``deleted`` is not
# stored: an ended run whose folder was removed reads so (see ``vml.catalog``).
ACTIVE_STATES = ("queued", "running")
# ``pruned``: a trial of ``ml tune`` its pruner stopped (see ``vml.launch.tune``).
ENDED_STATES = ("finished", "pruned", "failed", "cancelled", "killed", "crashed")
DELETED = "deleted"
RUN_STATES = (*ACTIVE_STATES, *ENDED_STATES, DELETED)
# The test split's scores on a run's row: the loss and accuracy, then the metrics of
# vml.evaluate (classification: macro F1, ROC AUC, average precision; regression).
TEST_METRICS = ("test_acc", "test_loss", "test_f1", "test_auc", "test_ap", "test_mae", "test_rmse", "test_r2")
# What every epoch records (each step adds step_loss and lr).
EPOCH_METRICS = ("loss", "acc", "val_loss", "val_acc")
