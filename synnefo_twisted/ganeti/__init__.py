"""
The Ganeti backend: job-file codec, op-status messages, RAPI client, the
simulated cluster, the job-queue watcher and the Ganeti-side scripts
(C{snf-ganeti-hook}, C{snf-progress-monitor}).
"""
