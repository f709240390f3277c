"""The ONNX importer\x27s handlers, one module per op family (private: use
frontends.onnx_import)."""
