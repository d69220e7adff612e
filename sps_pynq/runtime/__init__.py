"""Board-side runtime: Session and helpers. Torch- and onnx-free."""
