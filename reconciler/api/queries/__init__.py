"""The API's reads: the statements are the store's (`store.job_reads`, `store.history`,
`store.status`), one or two per request, never an N+1; here they are shaped for the
response models."""
