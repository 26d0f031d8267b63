// The schemas of Plinth's CPU operators (torch.ops.plinth.*); each kernel file registers its CPU
// implementation. Loaded by plinth/engine/native.py.
#include <torch/library.h>

TORCH_LIBRARY(plinth, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
}
