"""``gql-api migrate``: the earlier REST service's posts and profiles, brought over.

``sources`` reads each legacy layout (never writing it), ``legacy`` turns its rows into
gql-api records under today's rules, ``checkpoint`` keeps the place and the rows
refused, and ``runner`` moves, verifies and resumes.
"""
