//! Interoperability with the Python reference `safetensors`.
