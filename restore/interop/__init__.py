"""Other people's networks and runtimes: importing community models through spandrel
(`importer`) and exporting ours to ONNX (`export`)."""
