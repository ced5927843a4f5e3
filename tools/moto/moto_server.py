#!/usr/bin/env python3
"""moto server for the tests, the benchmarks and the local stack, with DynamoDB's requests
served one at a time.

moto 5 serves each request in a thread of its own, and its TransactWriteItems iterates over a
table's items while other requests insert into it: two transactions at once fail with a 500
("dictionary changed size during iteration"), which DynamoDB never does. slack-counter commits
every chunk of a message's words in a transaction of its own, all at once, so the emulator must
take them one after another, as a single DynamoDB partition would. Nothing else changes: S3,
SNS, SQS (and their long polls) are still served concurrently.

moto's TransactWriteItems also takes a backup of the whole table for every item of the
transaction, to restore it if the transaction is cancelled: 100 copies of a table of thousands
of words per transaction, gigabytes for one long Slack message. Here the backup of a table is
taken once per transaction (the same state, since nothing else runs meanwhile).

Arguments are moto_server's (`-H 127.0.0.1 -p PORT`).
"""

import copy
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_DYNAMODB = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _DYNAMODB:
        return _call_action(self)


class _OneBackupPerTransaction:
    """The `copy` module as moto's DynamoDB models see it: inside a transaction, `deepcopy` of
    an object already copied by the same transaction returns that copy."""

    def __init__(self):
        self.copies = None

    def deepcopy(self, value, memo=None):
        if self.copies is None:
            return copy.deepcopy(value, memo)
        if id(value) not in self.copies:
            self.copies[id(value)] = copy.deepcopy(value, memo)
        return self.copies[id(value)]

    def __getattr__(self, name):
        return getattr(copy, name)


_backups = _OneBackupPerTransaction()
_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_one_backup(self, transact_items):
    _backups.copies = {}
    try:
        return _transact_write_items(self, transact_items)
    finally:
        _backups.copies = None


DynamoHandler.call_action = _serialized_call_action
dynamodb_models.copy = _backups
dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_one_backup

if __name__ == "__main__":
    main()
