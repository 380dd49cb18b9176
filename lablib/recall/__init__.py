"""Associative recall: the MQAR task (Zoology) and a harness that trains lablib.layers models on it."""

from lablib.recall.mqar import IGNORE, MQARData, mqar, recall_accuracy
from lablib.recall.train import MQARTask, RecallResult, decoding_state_bytes, sweep_lr, train_recall

__all__ = ["IGNORE", "MQARData", "MQARTask", "RecallResult", "decoding_state_bytes", "mqar",
           "recall_accuracy", "sweep_lr", "train_recall"]
