"""Folder runs: the plan shared by every engine and the local engine (`batch`: inputs, outputs,
shards, manifest, one job), and Ray Data for clusters (`cluster`)."""
