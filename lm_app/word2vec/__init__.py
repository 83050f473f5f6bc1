"""word2vec: word vectors learned by predicting a word from its context (CBOW) or the context from a word.

Why here: the notes lm_app grew from describe word2vec, and its vectors can
start a language model's embedding (``train --init-embedding``).  It shares
build-dict's vocabulary and normalisation, so its words are the models' words.

The algorithm is gensim's and word2vec.c's with negative sampling, kept
figure for figure so the two compare side by side (``bench/word2vec.py``):

* ``config.py``: the command's settings and their check (no TensorFlow);
* ``sampling.py``: the formulas (subsampling, noise table, dynamic window,
  learning-rate decay, the random streams), one source for both paths;
* ``model.py``: the tables ``syn0``/``syn1neg`` as a Keras layer, the loss,
  and the portable TensorFlow training step;
* ``train.py``: the loop: the corpus as an id file written once, epochs of
  large batches through the native kernel (``lm_app/native``: one op that
  trains a batch of sentences on several threads, Hogwild) or the portable
  step, checkpoints, resume, Ctrl-C, and the outputs at the end.
"""
