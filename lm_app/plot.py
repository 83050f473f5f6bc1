"""The training curves as a PNG: a person reads a curve faster than a table of numbers."""
import io


def curves_png(history):
    """PNG bytes of loss and accuracy per epoch, training against validation."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = range(1, len(history.get("loss", [])) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in history:
            ax_loss.plot(epochs, history[key], marker="o", label=label)
    for key, label in (("accuracy", "training"), ("val_accuracy", "validation"),
                       ("val_top5", "validation top-5")):
        if key in history:
            ax_acc.plot(epochs, history[key], marker="o", label=label)
    ax_loss.set(title="cross-entropy per word", xlabel="epoch", ylabel="nats")
    ax_acc.set(title="next-word accuracy", xlabel="epoch", ylabel="share", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    plt.close(fig)
    return out.getvalue()
