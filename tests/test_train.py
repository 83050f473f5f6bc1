"""The training loop's own helpers (lm_app/train.py); the loop itself is exercised by test_resume.py and the CLI tests."""
from lm_app.train import describe_metrics


def figures(accuracy):
    return {"loss": 1.0, "accuracy": accuracy, "top5": 0.9, "perplexity": 2.7}


def test_the_final_figures_come_test_first_each_named_with_its_part():
    lines = describe_metrics({"epochs": 3, "valid": figures(0.5), "test": figures(0.25)}).splitlines()
    assert lines == [
        "test accuracy 25.0%, top-5 accuracy 90.0%, perplexity 2.7 "
        "(held out: neither trained on nor used to pick the weights)",
        "validation accuracy 50.0%, top-5 accuracy 90.0%, perplexity 2.7 (picked the weights: the best of 3 epochs)",
    ]


def test_a_run_without_a_test_part_reports_validation_only():
    assert describe_metrics({"epochs": 1, "valid": figures(0.5)}).endswith("(picked the weights: 1 epoch)")
