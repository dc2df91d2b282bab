"""Durable storage of received instances, the SQL index, the job queue and the export outbox."""
