// One translation unit for the TensorFlow op wrappers: their TensorFlow headers are parsed once, not once per file.
#include "ops.cc"
#include "gru_ops.cc"
