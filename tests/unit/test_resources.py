"""Resource arithmetic, Kubernetes quantity parsing, pod requests and formatting."""

import pytest

from barge.core.resources import (
    UNLIMITED,
    Capacity,
    Resources,
    format_bytes,
    format_cpu,
    parse_bytes,
    parse_count,
    parse_cpu_milli,
    pod_requests,
)

Gi = 2**30
Mi = 2**20


# --- Resources and Capacity ----------------------------------------------------


def test_resources_add_and_subtract_per_dimension() -> None:
    a = Resources(cpu_milli=1000, memory=Gi, gpus=1)
    b = Resources(cpu_milli=500, memory=Mi, gpus=2)
    assert a + b == Resources(1500, Gi + Mi, 3)
    assert (a + b) - b == a


def test_resources_times_scales_every_dimension() -> None:
    assert Resources(250, 3 * Mi, 1).times(4) == Resources(1000, 12 * Mi, 4)
    assert Resources(250, 3 * Mi, 1).times(0).is_zero()


def test_resources_default_is_zero() -> None:
    assert Resources().is_zero()
    assert not Resources(gpus=1).is_zero()


def test_resources_are_immutable_and_hashable() -> None:
    r = Resources(1000)
    with pytest.raises(AttributeError):
        r.cpu_milli = 5  # type: ignore[misc]
    assert {r: "x"}[Resources(1000)] == "x"


def test_fits_within_counts_what_is_already_used() -> None:
    capacity = Capacity(cpu_milli=8000, memory=16 * Gi, gpus=0)
    request = Resources(2000, 4 * Gi)
    assert request.fits_within(capacity, Resources(6000, 12 * Gi))
    assert not request.fits_within(capacity, Resources(6001, 0))
    assert not request.fits_within(capacity, Resources(0, 12 * Gi + 1))


def test_fits_within_ignores_memory_without_a_memory_quota() -> None:
    capacity = Capacity(cpu_milli=1000, memory=None, gpus=0)
    assert Resources(1000, 10**15).fits_within(capacity, Resources(0, 10**15))


def test_fits_within_needs_declared_gpus() -> None:
    assert not Resources(gpus=1).fits_within(Capacity(1000, None, gpus=0), Resources())
    assert Resources(gpus=2).fits_within(Capacity(1000, None, gpus=4), Resources(gpus=2))
    assert not Resources(gpus=3).fits_within(Capacity(1000, None, gpus=4), Resources(gpus=2))


def test_capacity_free_is_never_negative_and_unlimited_without_memory_quota() -> None:
    assert Capacity(8000, 16 * Gi, 2).free(Resources(3000, 4 * Gi, 1)) == Resources(5000, 12 * Gi, 1)
    assert Capacity(1000, Gi, 0).free(Resources(2000, 2 * Gi, 1)) == Resources()
    assert Capacity(1000, None, 0).free(Resources(0, 5 * Gi)).memory == UNLIMITED


# --- Quantities ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "milli"),
    [
        ("500m", 500),
        ("2", 2000),
        ("1.5", 1500),
        (2, 2000),
        (0.25, 250),
        ("0.0001", 1),  # rounds up to the next milli
        ("1500001u", 1501),
        ("100n", 1),
        ("1e3", 1_000_000),
        ("1k", 1_000_000),
        ("0", 0),
        (".5", 500),
        ("+1", 1000),
        (" 250m ", 250),
    ],
)
def test_parse_cpu_milli(quantity: str | int | float, milli: int) -> None:
    assert parse_cpu_milli(quantity) == milli


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("512Mi", 512 * Mi),
        ("1Gi", Gi),
        ("0.5Gi", Gi // 2),
        ("1.5Gi", 3 * Gi // 2),
        ("1Ki", 1024),
        ("1Ti", 2**40),
        ("1Pi", 2**50),
        ("1Ei", 2**60),
        ("1k", 1000),
        ("1M", 10**6),
        ("1G", 10**9),
        ("1T", 10**12),
        ("1P", 10**15),
        ("1E", 10**18),  # a bare E is exa, not an exponent
        ("1e3", 1000),
        ("1E3", 1000),
        ("12e-1", 2),  # 1.2 bytes rounds up
        ("128974848", 128974848),
        (4096, 4096),
        ("500m", 1),  # half a byte rounds up to one
        ("1.0000001Ki", 1025),
    ],
)
def test_parse_bytes(quantity: str | int, size: int) -> None:
    assert parse_bytes(quantity) == size


def test_parse_count_accepts_whole_numbers_only() -> None:
    assert parse_count("2") == 2
    assert parse_count(1) == 1
    assert parse_count("1k") == 1000
    with pytest.raises(ValueError, match="whole number"):
        parse_count("500m")


@pytest.mark.parametrize(
    "quantity",
    ["abc", "", "1.5.5", "1Gb", "Gi", "--1", "1 Gi", "1e", "ten", "1e400", "nan"],
)
def test_bad_quantities_are_rejected_with_the_quantity_named(quantity: str) -> None:
    with pytest.raises(ValueError, match=f"invalid quantity {quantity!r}"):
        parse_bytes(quantity)


def test_negative_and_non_numeric_quantities_are_rejected() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_cpu_milli("-1")
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_cpu_milli(-1)
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_cpu_milli(True)
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_cpu_milli(float("inf"))
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_cpu_milli(None)  # type: ignore[arg-type]


def test_invalid_quantity_message_reads_well() -> None:
    with pytest.raises(ValueError) as error:
        parse_cpu_milli("abc")
    assert str(error.value) == "invalid quantity 'abc'"


# --- Pod requests --------------------------------------------------------------


def _container(requests: dict[str, object] | None = None, limits: dict[str, object] | None = None) -> dict:
    resources: dict[str, object] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources}


def test_pod_requests_sums_containers() -> None:
    spec = {
        "containers": [
            _container({"cpu": "500m", "memory": "256Mi"}),
            _container({"cpu": "1.5", "memory": "1Gi", "nvidia.com/gpu": "1"}),
        ]
    }
    assert pod_requests(spec) == Resources(2000, Gi + 256 * Mi, 1)


def test_container_with_only_limits_requests_its_limits() -> None:
    spec = {"containers": [_container(limits={"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": 1})]}
    assert pod_requests(spec) == Resources(2000, Gi, 1)


def test_limits_fill_in_only_the_resources_without_a_request() -> None:
    spec = {"containers": [_container({"cpu": "250m"}, {"cpu": "4", "memory": "2Gi"})]}
    assert pod_requests(spec) == Resources(250, 2 * Gi)


def test_containers_without_resources_request_nothing() -> None:
    assert pod_requests({"containers": [{"name": "c", "image": "x"}]}).is_zero()
    assert pod_requests({"containers": [{"name": "c", "resources": None}]}).is_zero()
    assert pod_requests({}).is_zero()


def test_init_containers_count_by_their_peak_per_resource() -> None:
    spec = {
        "initContainers": [
            _container({"cpu": "4", "memory": "128Mi"}),
            _container({"cpu": "1", "memory": "3Gi"}),
        ],
        "containers": [_container({"cpu": "1", "memory": "1Gi"}), _container({"cpu": "1", "memory": "1Gi"})],
    }
    # cpu: max(2, 4); memory: max(2Gi, 3Gi)
    assert pod_requests(spec) == Resources(4000, 3 * Gi)


def test_small_init_containers_do_not_add_to_the_pod() -> None:
    spec = {
        "initContainers": [_container({"cpu": "100m"})],
        "containers": [_container({"cpu": "1"})],
    }
    assert pod_requests(spec) == Resources(1000)


def test_sidecar_init_containers_run_alongside_the_app_containers() -> None:
    spec = {
        "initContainers": [
            _container({"cpu": "500m", "memory": "64Mi"}) | {"restartPolicy": "Always"},
            _container({"cpu": "2"}),  # runs while the sidecar runs: 2.5 vCPU at peak
        ],
        "containers": [_container({"cpu": "1", "memory": "1Gi"})],
    }
    assert pod_requests(spec) == Resources(2500, Gi + 64 * Mi)


def test_init_containers_before_a_sidecar_do_not_overlap_with_it() -> None:
    spec = {
        "initContainers": [
            _container({"cpu": "3"}),
            _container({"cpu": "1"}) | {"restartPolicy": "Always"},
        ],
        "containers": [_container({"cpu": "1"})],
    }
    assert pod_requests(spec) == Resources(3000)


def test_pod_overhead_is_added() -> None:
    spec = {"containers": [_container({"cpu": "1"})], "overhead": {"cpu": "250m", "memory": "120Mi"}}
    assert pod_requests(spec) == Resources(1250, 120 * Mi)


def test_pod_requests_reports_bad_quantities() -> None:
    with pytest.raises(ValueError, match="invalid quantity 'lots'"):
        pod_requests({"containers": [_container({"memory": "lots"})]})


# --- Formatting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("milli", "text"),
    [(2000, "2"), (500, "0.5"), (1500, "1.5"), (1, "0.001"), (0, "0"), (16000, "16"), (1250, "1.25")],
)
def test_format_cpu(milli: int, text: str) -> None:
    assert format_cpu(milli) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (512 * Mi, "512Mi"),
        (3 * Gi // 2, "1.5Gi"),
        (Gi, "1Gi"),
        (16 * Gi, "16Gi"),
        (1024, "1Ki"),
        (1000, "1000"),
        (0, "0"),
        (2**40, "1Ti"),
        (2**60, "1Ei"),
        (10**9, "953.67Mi"),
    ],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text


def test_describe_names_each_kind_and_omits_zero_memory_and_gpus() -> None:
    assert Resources(2000, 4 * Gi, 1).describe() == "2 vCPU, 4Gi memory, 1 GPU"
    assert Resources(500, 0, 2).describe() == "0.5 vCPU, 2 GPUs"
    assert Resources(1000, 512 * Mi).describe() == "1 vCPU, 512Mi memory"
    assert Resources().describe() == "0 vCPU"
