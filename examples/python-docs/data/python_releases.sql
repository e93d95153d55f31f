-- The demo database of `make agent-demo`: Python's feature releases, from python.org's release schedule PEPs
-- (PEP 569, 596, 619, 664, 693, 719). data/python_releases.db is built from this file (tests check they agree).
CREATE TABLE python_releases (
    version TEXT PRIMARY KEY,        -- "3.11"
    released DATE NOT NULL,          -- the x.y.0 release
    end_of_life DATE NOT NULL,       -- the end of security fixes (the month the PEP gives; day 1 when it gives none)
    pep INTEGER NOT NULL,            -- the release schedule PEP
    headline TEXT NOT NULL           -- one new feature of the release
);
INSERT INTO python_releases VALUES ('3.8',  '2019-10-14', '2024-10-07', 569, 'assignment expressions, the walrus operator := (PEP 572)');
INSERT INTO python_releases VALUES ('3.9',  '2020-10-05', '2025-10-01', 596, 'dict union operators | and |= (PEP 584)');
INSERT INTO python_releases VALUES ('3.10', '2021-10-04', '2026-10-01', 619, 'structural pattern matching, match/case (PEP 634)');
INSERT INTO python_releases VALUES ('3.11', '2022-10-24', '2027-10-01', 664, 'exception groups and except* (PEP 654)');
INSERT INTO python_releases VALUES ('3.12', '2023-10-02', '2028-10-01', 693, 'type parameter syntax (PEP 695)');
INSERT INTO python_releases VALUES ('3.13', '2024-10-07', '2029-10-01', 719, 'an experimental free-threaded build (PEP 703)');
