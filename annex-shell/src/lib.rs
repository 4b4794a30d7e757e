//! git-annex-shell: argv forms, restrictions, and the commands it serves.
