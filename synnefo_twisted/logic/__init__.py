"""
Business logic of the control plane: plain synchronous functions over the
models of L{synnefo_twisted.db.models}, and thin asynchronous shells that
read and write the database and submit Ganeti jobs.

 - L{synnefo_twisted.logic.servers}: server faults, create-request
   validation, status tables, action checks, quota provisions and the
   C{CreateInstance} parameters (pure).
 - L{synnefo_twisted.logic.backendselect}: choosing the Ganeti backend of a
   new server (pure).
 - L{synnefo_twisted.logic.serverops}: create, actions and console over a
   database, a backend registry and a console broker (async).
 - L{synnefo_twisted.logic.serverviews}: the server JSON of the compute API
   (pure).
"""
