-- 101_truth_city: ground truth of the city step of onemap generate.
--
-- Refuse demand per residential building, for the refuse-building placement
-- (垃圾楼空间分布优化) and flow allocation (生活垃圾流向流量调配) analyses;
-- population and tagged residents per grid, for the grid statistics
-- (网格统计). Both are computed from the rows the generator wrote.

CREATE SCHEMA IF NOT EXISTS truth;

CREATE TABLE IF NOT EXISTS truth.refuse_demand (
    building_id     bigint PRIMARY KEY,
    households      integer NOT NULL CHECK (households >= 0),
    occupied        integer NOT NULL CHECK (occupied >= 0),
    residents       integer NOT NULL CHECK (residents >= 0),
    kg_per_day      numeric(10, 2) NOT NULL CHECK (kg_per_day >= 0)
);
COMMENT ON TABLE truth.refuse_demand IS
    '真值: 每栋居民楼的生活垃圾产生量 / household refuse per residential building. '
    'kg_per_day = residents x 1.0 kg per person per day, the rate used for Beijing household '
    'waste (北京市生活垃圾人均日产量约 1 kg); vacant dwellings produce none.';
COMMENT ON COLUMN truth.refuse_demand.building_id IS 'onemap.building.id';
COMMENT ON COLUMN truth.refuse_demand.kg_per_day IS '日产生量 kg/d = residents x 1.0';

CREATE TABLE IF NOT EXISTS truth.grid_population (
    grid_id         bigint PRIMARY KEY,
    level           smallint NOT NULL,
    households      integer NOT NULL,
    occupied        integer NOT NULL,
    residents       integer NOT NULL,
    elderly         integer NOT NULL,
    elderly_alone   integer NOT NULL,
    disabled        integer NOT NULL,
    low_income      integer NOT NULL,
    key_person      integer NOT NULL
);
COMMENT ON TABLE truth.grid_population IS
    '真值: 网格人口与重点人群 / households, residents and tagged residents per grid; a level-1 '
    'grid counts its sub-grids. elderly = aged 65 and over on the reference date.';
COMMENT ON COLUMN truth.grid_population.grid_id IS 'onemap.grid.id';
