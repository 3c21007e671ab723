"""Endpoints: the receivers, their switches and their signing secrets.

* ``registry``: register, find, change and delete endpoints.
* ``switches``: disable and enable, pause and resume.
* ``ping``: a ``webhook.test`` event sent to one endpoint only.
* ``signing``: new signing secrets, and the ones that sign right now.
* ``rotation``: a new signing secret, the old one signing through a grace period.
* ``secretbox``: secrets encrypted at rest (Fernet), and re-encryption.
"""
