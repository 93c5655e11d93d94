"""What happened in the registry, and who is told: the audit log and webhooks.

``audit`` records each change (a push, a delete, a login, a rule changed) as
one row written in the change's own transaction; ``dispatch`` turns the rows
that webhooks may want into deliveries, and ``delivery`` POSTs them.
"""
