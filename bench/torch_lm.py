"""The reference: a minimal PyTorch ``nn.LSTM`` (or ``nn.GRU``) language model on ``word_language_model``'s recipe.

Written for the side-by-side benchmark (``bench/lm.py``), so both models see
the same token ids, rows, chunks and schedule: uniform(-0.1, 0.1) embedding
and decoder weights, dropout on the embeddings, between the layers and before
the decoder, SGD with gradient clipping by global norm, the learning rate
divided by 4 after an epoch without validation improvement, evaluation with
10 rows.  Needs ``pip install torch==2.13.0`` (CPU); it is not a dependency of lm_app.
"""
import math
import time

import numpy as np
import torch
from torch import nn


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp=200, nhid=200, nlayers=2, dropout=0.2, tied=False, cell="lstm"):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tied:
            self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, x, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(x)), hidden)
        return self.decoder(self.drop(output)), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if isinstance(self.rnn, nn.GRU):
            return weight.new_zeros(self.nlayers, bsz, self.nhid)
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def batchify(ids, rows):
    n = len(ids) // rows
    return torch.from_numpy(np.asarray(ids[:rows * n], np.int64)).view(rows, n).t().contiguous()


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def evaluate(model, source, bptt, ntoken):
    model.train(False)  # evaluation mode: dropout off
    total, hidden = 0.0, model.init_hidden(source.size(1))
    criterion = nn.CrossEntropyLoss()
    with torch.no_grad():
        for i in range(0, source.size(0) - 1, bptt):
            data, targets = get_batch(source, i, bptt)
            output, hidden = model(data, hidden)
            total += len(data) * criterion(output.view(-1, ntoken), targets).item()
    return total / (len(source) - 1)


def run(train_ids, valid_ids, test_ids, ntoken, epochs=4, batch_size=20, bptt=35, lr=20.0, clip=0.25,
        emsize=200, nhid=200, nlayers=2, dropout=0.2, seed=1111, threads=None, log=print, on_epoch=None,
        cell="lstm"):
    """Train and evaluate; returns per-epoch records and the test perplexity.

    ``on_epoch(record)``, if given, is called after each epoch (the benchmark hands the CPU over there).
    """
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    train_data, val_data = batchify(train_ids, batch_size), batchify(valid_ids, 10)
    test_data = batchify(test_ids, 10)
    model = RNNModel(ntoken, emsize, nhid, nlayers, dropout, cell=cell)
    criterion = nn.CrossEntropyLoss()
    best, records = None, []
    for epoch in range(1, epochs + 1):
        model.train()
        hidden = model.init_hidden(batch_size)
        start = time.perf_counter()
        for i in range(0, train_data.size(0) - 1, bptt):
            data, targets = get_batch(train_data, i, bptt)
            hidden = hidden.detach() if torch.is_tensor(hidden) else tuple(h.detach() for h in hidden)  # truncated BPTT
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, ntoken), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
        seconds = time.perf_counter() - start
        val_loss = evaluate(model, val_data, bptt, ntoken)
        records.append({"seconds": seconds, "tokens_per_second": train_data.numel() / seconds,
                        "val_perplexity": math.exp(val_loss)})
        log(f"torch epoch {epoch}: {seconds:.1f} s, {train_data.numel() / seconds:,.0f} tokens/s, "
            f"validation perplexity {math.exp(val_loss):.1f}")
        if on_epoch:
            on_epoch(records[-1])
        if best is None or val_loss < best:
            best = val_loss
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            lr /= 4.0
    model.load_state_dict(best_state)
    return records, math.exp(evaluate(model, test_data, bptt, ntoken))
