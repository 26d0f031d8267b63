"""The vocabulary the synthetic cost generator draws from: accounts, regions and usage profiles.

A *profile* is one kind of metered usage as it appears in a Cost and Usage Report: a product code, a
usage type, an operation, a pricing unit and a public on-demand rate, plus the ``product_*`` attributes
AWS attaches. The values are the ones the public CUR Query Library filters on (``AmazonEC2`` +
``%BoxUsage%`` + ``RunInstances``, ``NAT Gateway`` + ``NatGateway-Hours``, S3 ``TimedStorage-ByteHrs``
with ``StandardStorage`` ...), so its queries find rows in the generated data. Rates are list-price-like
(USD), not quotes. Nothing here is random: the generator samples from these lists with its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["LINKED_ACCOUNTS", "PAYERS", "PROFILES", "REGIONS", "Profile", "Region"]


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    prefix: str  # usage-type prefix, e.g. "USE1"
    name: str  # product_location
    weight: float


@dataclass(frozen=True, slots=True)
class Profile:
    """One metered usage kind. ``resource`` names a resource-id template; ``commit`` says which
    commitments may cover it ("sp", "ri", "sp+ri"); ``steady`` marks always-on resources (one row per
    resource per day of 24 hours) that idle-resource queries look for."""

    code: str
    name: str
    family: str
    usage: str  # usage type without the region prefix
    operation: str
    unit: str
    rate: float
    qty: float  # typical usage amount per daily row
    resource: str = ""
    servicecode: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    commit: str = ""
    steady: bool = False
    weight: float = 1.0
    global_: bool = False  # billed without a region (CloudFront, Route 53 domains, support)
    description: str = ""


PAYERS: list[tuple[str, str]] = [
    ("111122223333", "Acme Corp Management"),
    ("210987654321", "Acme Retail Payer"),
    ("378451290016", "Acme Labs Payer"),
]
# (account id, name, payer index)
LINKED_ACCOUNTS: list[tuple[str, str, int]] = [
    ("444455556666", "prod-web", 0),
    ("123456789012", "prod-data", 0),
    ("234567890123", "prod-ml", 0),
    ("345678901234", "staging-web", 0),
    ("456789012345", "dev-sandbox", 0),
    ("567890123456", "shared-network", 0),
    ("678901234567", "security-audit", 0),
    ("789012345678", "log-archive", 0),
    ("111122223333", "management", 0),
    ("890123456789", "retail-prod", 1),
    ("901234567890", "retail-staging", 1),
    ("102938475610", "retail-analytics", 1),
    ("210987654321", "retail-payer", 1),
    ("564738291045", "retail-dev", 1),
    ("192837465012", "labs-research", 2),
    ("283746501928", "labs-gpu", 2),
    ("374650192837", "labs-dev", 2),
    ("465019283746", "labs-prod", 2),
    ("378451290016", "labs-payer", 2),
    ("556677889900", "contact-center", 0),
]
REGIONS: list[Region] = [
    Region("us-east-1", "USE1", "US East (N. Virginia)", 0.34),
    Region("us-west-2", "USW2", "US West (Oregon)", 0.2),
    Region("eu-west-1", "EU", "EU (Ireland)", 0.18),
    Region("eu-central-1", "EUC1", "EU (Frankfurt)", 0.1),
    Region("ap-southeast-2", "APS2", "Asia Pacific (Sydney)", 0.1),
    Region("ap-northeast-1", "APN1", "Asia Pacific (Tokyo)", 0.08),
]

# instance type -> (processor, vCPU, memory, hourly Linux rate)
_EC2_TYPES = {
    "m5.large": ("Intel Xeon Platinum 8175", "2", "8 GiB", 0.096),
    "m5.xlarge": ("Intel Xeon Platinum 8175", "4", "16 GiB", 0.192),
    "c5.2xlarge": ("Intel Xeon Platinum 8124M", "8", "16 GiB", 0.34),
    "r6i.xlarge": ("Intel Xeon 8375C (Ice Lake)", "4", "32 GiB", 0.252),
    "t3.medium": ("Intel Skylake E5 2686 v5", "2", "4 GiB", 0.0416),
    "m6g.xlarge": ("AWS Graviton2 Processor", "4", "16 GiB", 0.154),
    "c7g.large": ("AWS Graviton3 Processor", "2", "4 GiB", 0.0725),
    "m6a.large": ("AMD EPYC 7R13 Processor", "2", "8 GiB", 0.0864),
    "g5.xlarge": ("AMD EPYC 7R32", "4", "16 GiB", 1.006),
}


def _ec2_attrs(itype: str, os: str = "Linux", tenancy: str = "Shared") -> dict[str, str]:
    proc, vcpu, mem, _ = _EC2_TYPES[itype]
    family = itype.split(".")[0]
    return {
        "instance_type": itype,
        "instance_type_family": family,
        "instance_family": "General purpose" if family[0] in "mt" else "Compute optimized",
        "physical_processor": proc,
        "processor_features": "AVX; AVX2" if "Graviton" not in proc else "",
        "vcpu": vcpu,
        "memory": mem,
        "operating_system": os,
        "tenancy": tenancy,
        "license_model": "No License required" if os == "Linux" else "License included",
        "pre_installed_sw": "NA",
        "current_generation": "Yes",
        "group": "",
    }


_REGIONAL = "$0.010 per GB - regional data transfer - in/out/between EC2 AZs or using IPs or ELB"


# One usage profile per line or two reads as a table; the formatter would spread it over 1,700 lines.
# fmt: off
def _ec2_profiles() -> list[Profile]:
    out: list[Profile] = []
    for itype, (_, _, _, rate) in _EC2_TYPES.items():
        a = _ec2_attrs(itype)
        out.append(
            Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", f"BoxUsage:{itype}",
                "RunInstances", "Hrs", rate, 24, "instance", attrs=a, commit="sp+ri", weight=3.0,
                steady=itype == "m5.large")
        )
    out += [
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "BoxUsage:m5.xlarge",
            "RunInstances:0002", "Hrs", 0.376, 24, "instance", attrs=_ec2_attrs("m5.xlarge", "Windows"),
            commit="sp+ri", weight=1.5),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "SpotUsage:c5.2xlarge",
            "RunInstances:SV001", "Hrs", 0.12, 20, "instance", attrs=_ec2_attrs("c5.2xlarge"), weight=1.5),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "DedicatedUsage:r6i.xlarge",
            "RunInstances", "Hrs", 0.277, 24, "instance", attrs=_ec2_attrs("r6i.xlarge", tenancy="Dedicated"),
            commit="sp+ri", weight=0.5),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "BoxUsage:m5.large",
            "RunInstances", "Hrs", 0.096, 24, "instance",
            attrs={**_ec2_attrs("m5.large"), "location_type": "AWS Outposts"}, weight=0.3),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Compute Instance", "EBSOptimized:m5.large",
            "RunInstances", "Hrs", 0.0, 24, "instance", attrs=_ec2_attrs("m5.large"), weight=0.3),
    ]
    ebs = [
        ("EBS:VolumeUsage.gp2", "General Purpose", "gp2", 0.10, 500, 2.5),
        ("EBS:VolumeUsage.gp3", "General Purpose", "gp3", 0.08, 500, 2.0),
        ("EBS:VolumeUsage.piops", "Provisioned IOPS", "io1", 0.125, 800, 0.4),
        ("EBS:VolumeUsage.io2", "Provisioned IOPS", "io2", 0.125, 800, 0.3),
        ("EBS:VolumeUsage.st1", "Throughput Optimized HDD", "st1", 0.045, 2000, 0.3),
        ("EBS:VolumeUsage.sc1", "Cold HDD", "sc1", 0.015, 2000, 0.2),
    ]
    for usage, vtype, api, rate, qty, w in ebs:
        out.append(
            Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Storage", usage,
                "CreateVolume-" + api.capitalize(), "GB-Mo", rate, qty / 30, "volume",
                attrs={"volume_api_name": api, "volume_type": vtype, "storage_media": "SSD-backed"}, weight=w)
        )
    out += [
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "System Operation", "EBS:VolumeP-IOPS.piops",
            "CreateVolume-P-IOPS", "IOPS-Mo", 0.065, 100, "volume", attrs={"volume_api_name": "io1"},
            weight=0.3),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "System Operation", "EBS:VolumeP-IOPS.gp3",
            "CreateVolume-Gp3", "IOPS-Mo", 0.005, 100, "volume", attrs={"volume_api_name": "gp3"},
            weight=0.3),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Provisioned Throughput",
            "EBS:VolumeP-Throughput.gp3", "CreateVolume-Gp3", "GiBps-mo", 0.04, 5, "volume",
            attrs={"volume_api_name": "gp3"}, weight=0.2),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Storage Snapshot", "EBS:SnapshotUsage",
            "CreateSnapshot", "GB-Mo", 0.05, 40, "snapshot", weight=1.5),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Storage Snapshot", "EBS:SnapshotCopy",
            "EBS Snapshot Copy", "GB", 0.02, 50, "snapshot", weight=0.3),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "IP Address", "ElasticIP:IdleAddress",
            "AssociateAddressVPC", "Hrs", 0.005, 24, "eip", weight=0.3),
        Profile("AmazonVPC", "Amazon Virtual Private Cloud", "VPC Public IPv4 Address",
            "PublicIPv4:InUseAddress", "AssociateAddressVPC", "Hrs", 0.005, 24, "eip", weight=0.5),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "NAT Gateway", "NatGateway-Hours", "NatGateway",
            "Hrs", 0.045, 24, "natgateway", steady=True, weight=0.8),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "NAT Gateway", "NatGateway-Bytes", "NatGateway",
            "GB", 0.045, 60, "natgateway:half", weight=0.8),
    ]
    return out


def _transfer_profiles() -> list[Profile]:
    dt = "AWSDataTransfer"
    return [
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "DataTransfer-Out-Bytes",
            "RunInstances", "GB", 0.09, 40, "instance", servicecode=dt,
            attrs={"transfer_type": "AWS Outbound", "to_location": "External"}, weight=2.0),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "DataTransfer-In-Bytes",
            "RunInstances", "GB", 0.0, 80, "instance", servicecode=dt,
            attrs={"transfer_type": "AWS Inbound", "from_location": "External"}),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "DataTransfer-Regional-Bytes",
            "InterZone-In", "GB", 0.01, 4000, "instance", servicecode=dt,
            attrs={"transfer_type": "IntraRegion"}, weight=0.3, steady=True,
            description=_REGIONAL),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "DataTransfer-Regional-Bytes",
            "InterZone-Out", "GB", 0.01, 2, "instance:half", servicecode=dt,
            attrs={"transfer_type": "IntraRegion"}, weight=1.0, steady=True,
            description=_REGIONAL),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "USW2-AWS-Out-Bytes",
            "PublicIP-Out", "GB", 0.02, 30, "instance", servicecode=dt,
            attrs={"transfer_type": "InterRegion Outbound"}, weight=0.6),
        Profile("AmazonEC2", "Amazon Elastic Compute Cloud", "Data Transfer", "USW2-AWS-In-Bytes",
            "PublicIP-In", "GB", 0.0, 30, "instance", servicecode=dt,
            attrs={"transfer_type": "InterRegion Inbound"}, weight=0.4),
        Profile("AmazonS3", "Amazon Simple Storage Service", "Data Transfer", "DataTransfer-Out-Bytes",
            "GetObject", "GB", 0.09, 50, "bucket", servicecode=dt, attrs={"transfer_type": "AWS Outbound"},
            weight=1.0),
        Profile("AWSELB", "Elastic Load Balancing", "Data Transfer", "DataTransfer-Out-Bytes",
            "LoadBalancing-PublicIP-Out", "GB", 0.09, 30, "elb:half", servicecode=dt,
            attrs={"transfer_type": "AWS Outbound"}, weight=0.5),
        Profile("AmazonVPC", "Amazon Virtual Private Cloud", "Data Transfer", "DataTransfer-Out-Bytes",
            "VPCPeering-Out", "GB", 0.01, 30, "vpc", servicecode=dt, weight=0.3),
        Profile("AmazonMSK", "Amazon Managed Streaming for Apache Kafka", "Data Transfer",
            "DataTransfer-Regional-Bytes", "InterZone-Out", "GB", 0.01, 30, "msk", servicecode=dt,
            weight=0.3),
        Profile(
            "AWSDirectConnect",
            "AWS Direct Connect",
            "Data Transfer",
            "DataXfer-Out:EqDC2-aws",
            "DataXfer-Out",
            "GB",
            0.02,
            200,
            "dxcon",
            servicecode=dt,
            attrs={
                "transfer_type": "IntraRegion Outbound",
                "direct_connect_location": "EqDC2",
                "port_speed": "10G",
            },
            weight=0.3,
        ),
        Profile("AmazonCloudFront", "Amazon CloudFront", "Data Transfer", "US-DataTransfer-Out-Bytes", "GET",
            "GB", 0.085, 300, "distribution", servicecode=dt, global_=True, weight=1.5),
        Profile("AmazonCloudFront", "Amazon CloudFront", "Data Transfer", "US-CloudFront-Out-Bytes", "GET",
            "GB", 0.02, 50, "distribution", servicecode=dt, global_=True, weight=0.5),
    ]


def _storage_profiles() -> list[Profile]:
    s3 = "Amazon Simple Storage Service"
    s3_storage = [
        ("TimedStorage-ByteHrs", "StandardStorage", "Standard", 0.023, 3.0),
        ("TimedStorage-SIA-ByteHrs", "StandardIAStorage", "Standard - Infrequent Access", 0.0125, 0.8),
        ("TimedStorage-ZIA-ByteHrs", "OneZoneIAStorage", "One Zone - Infrequent Access", 0.01, 0.3),
        ("TimedStorage-GlacierByteHrs", "GlacierStorage", "Amazon Glacier", 0.004, 0.5),
        ("TimedStorage-GDA-ByteHrs", "DeepArchiveStorage", "Glacier Deep Archive", 0.00099, 0.3),
        ("TimedStorage-INT-FA-ByteHrs", "IntelligentTieringFAStorage", "Intelligent-Tiering", 0.023, 0.6),
        ("TimedStorage-INT-IA-ByteHrs", "IntelligentTieringIAStorage", "Intelligent-Tiering", 0.0125, 0.4),
        ("TimedStorage-RRS-ByteHrs", "ReducedRedundancyStorage", "Reduced Redundancy", 0.024, 0.1),
    ]
    out = [
        Profile("AmazonS3", s3, "Storage", usage, op, "GB-Mo", rate, 900, "bucket",
            attrs={"volume_type": vtype, "storage_class": vtype}, weight=w)
        for usage, op, vtype, rate, w in s3_storage
    ]
    s3_api = [
        ("Requests-Tier1", "PutObject", 0.000005),
        ("Requests-Tier2", "GetObject", 0.0000004),
        ("Requests-Tier1", "CopyObject", 0.000005),
        ("Requests-Tier1", "PutObjectForRepl", 0.000005),
        ("Requests-SIA-Tier2", "GetObject", 0.000001),
        ("Retrieval-SIA", "GetObject", 0.01),
        ("EarlyDelete-ByteHrs", "DeleteObject", 0.004),
        ("Requests-Tier3", "S3-GDATransition", 0.00005),
        ("Monitoring-Automation-INT", "IntAAObject", 0.0000025),
    ]
    out += [
        Profile("AmazonS3", s3, "API Request", usage, op, "Requests", rate, 20000, "bucket", weight=0.6)
        for usage, op, rate in s3_api
    ]
    out += [
        Profile("AmazonGlacier", "Amazon Glacier", "Storage", "TimedStorage-ByteHrs", "Storage", "GB-Mo",
            0.0036, 2000, "vault", attrs={"volume_type": "Amazon Glacier"}, weight=0.3),
        Profile("AmazonEFS", "Amazon Elastic File System", "Storage", "TimedStorage-ByteHrs", "Storage",
            "GB-Mo", 0.3, 300, "efs", attrs={"storage_class": "General Purpose"}, weight=0.8),
        Profile("AmazonEFS", "Amazon Elastic File System", "Storage", "IATimedStorage-ByteHrs", "Storage",
            "GB-Mo", 0.025, 300, "efs", attrs={"storage_class": "Infrequent Access"}, weight=0.3),
        Profile("AmazonFSx", "Amazon FSx", "Storage", "Lustre-Storage", "CreateFileSystem:Lustre", "GB-Mo",
            0.14, 1200, "fsx", attrs={"deployment_option": "Multi-AZ"}, weight=0.3),
        Profile("AWSBackup", "AWS Backup", "Storage", "WarmStorage-ByteHrs-EBS", "Storage", "GB-Mo", 0.05,
            400, "backupvault", weight=0.5),
        Profile("AmazonDynamoDB", "Amazon DynamoDB", "Database Storage", "TimedStorage-ByteHrs",
            "StandardStorage", "GB-Mo", 0.25, 50, "dynamodb", weight=0.5),
    ]
    return out


def _database_profiles() -> list[Profile]:
    rds = "Amazon Relational Database Service"
    mysql = {
        "database_engine": "MySQL",
        "deployment_option": "Multi-AZ",
        "instance_type": "db.r6g.large",
        "instance_type_family": "r6g",
        "vcpu": "2",
        "memory": "16 GiB",
        "physical_processor": "AWS Graviton2 Processor",
        "license_model": "No license required",
    }
    aurora = {**mysql, "database_engine": "Aurora MySQL", "deployment_option": "Single-AZ"}
    return [
        Profile("AmazonRDS", rds, "Database Instance", "InstanceUsage:db.r6g.large", "CreateDBInstance:0002",
            "Hrs", 0.25, 24, "rdsdb", attrs=mysql, commit="ri", steady=True, weight=2.0),
        Profile("AmazonRDS", rds, "Database Instance", "Multi-AZUsage:db.r6g.large", "CreateDBInstance:0014",
            "Hrs", 0.5, 24, "rdsdb", attrs={**mysql, "database_engine": "PostgreSQL"}, commit="ri",
            weight=1.0),
        Profile("AmazonRDS", rds, "Database Instance", "InstanceUsage:db.r6g.large", "CreateDBInstance:0016",
            "Hrs", 0.29, 24, "rdsdb", attrs=aurora, commit="ri", weight=1.0),
        Profile("AmazonRDS", rds, "Database Instance", "InstanceUsage:db.m5.large", "CreateDBInstance:0002",
            "Hrs", 0.171, 24, "rdsdb",
            attrs={**mysql, "location_type": "AWS Outposts", "instance_type": "db.m5.large"}, weight=0.3),
        Profile("AmazonRDS", rds, "Storage I/O", "Aurora:StorageIOUsage", "CreateDBInstance:0016", "IOs",
            0.0000002, 5e6, "auroracluster", attrs=aurora, weight=0.8),
        Profile("AmazonRDS", rds, "Database Storage", "Aurora:StorageUsage", "CreateDBInstance:0016", "GB-Mo",
            0.1, 400, "auroracluster", attrs=aurora, weight=0.8),
        Profile("AmazonRDS", rds, "Aurora Global Database", "Aurora:GlobalDbDataTransfer-Bytes",
            "CreateDBInstance:0016", "GB", 0.2, 20, "auroracluster", attrs=aurora, weight=0.3),
        Profile("AmazonRDS", rds, "Database Storage", "RDS:GP2-Storage", "CreateDBInstance:0002", "GB-Mo",
            0.115, 300, "rdsdb", attrs=mysql, weight=1.0),
        Profile("AmazonRDS", rds, "Provisioned IOPS", "RDS:PIOPS", "CreateDBInstance:0002", "IOPS-Mo", 0.1,
            100, "rdsdb", attrs=mysql, weight=0.3),
        Profile("AmazonRDS", rds, "Storage Snapshot", "RDS:ChargedBackupUsage", "CreateDBInstance:0002",
            "GB-Mo", 0.095, 200, "rdsdb", attrs=mysql, weight=0.5),
        Profile("AmazonRDS", rds, "System Operation", "RDS:StorageIOUsage", "CreateDBInstance:0002", "IOs",
            0.0000001, 1e6, "rdsdb", attrs=mysql, weight=0.2),
        Profile("AmazonRDS", rds, "Serverless", "Aurora:ServerlessV2Usage", "CreateDBInstance:0016", "ACU-Hr",
            0.12, 30, "rdsdb", attrs=aurora, weight=0.5),
        Profile(
            "AmazonElastiCache",
            "Amazon ElastiCache",
            "Cache Instance",
            "NodeUsage:cache.r6g.large",
            "CreateCacheCluster:0002",
            "Hrs",
            0.206,
            24,
            "cache",
            attrs={
                "cache_engine": "Redis",
                "instance_type": "cache.r6g.large",
                "physical_processor": "AWS Graviton2 Processor",
            },
            commit="ri",
            weight=1.2,
        ),
        Profile("AmazonRedshift", "Amazon Redshift", "Compute Instance", "Node:ra3.xlplus",
            "RunComputeNode:0001", "Hrs", 1.086, 24, "redshift",
            attrs={"instance_type": "ra3.xlplus", "usage_family": "Compute"}, commit="ri", weight=0.8),
        Profile("AmazonDynamoDB", "Amazon DynamoDB", "Amazon DynamoDB PayPerRequest Throughput",
            "WriteRequestUnits", "PayPerRequestThroughput", "WriteRequestUnits", 0.00000125, 3e6, "dynamodb",
            weight=0.8),
        Profile("AmazonDynamoDB", "Amazon DynamoDB", "Amazon DynamoDB PayPerRequest Throughput",
            "ReadRequestUnits", "PayPerRequestThroughput", "ReadRequestUnits", 0.00000025, 9e6, "dynamodb",
            weight=0.8),
        Profile("AmazonDynamoDB", "Amazon DynamoDB", "Provisioned IOPS", "ReadCapacityUnit-Hrs",
            "CommittedThroughput", "ReadCapacityUnit-Hrs", 0.00013, 2400, "dynamodb", weight=0.6),
        Profile("AmazonDAX", "Amazon DynamoDB Accelerator", "DAX", "NodeUsage:dax.r5.large", "CreateCluster",
            "Hrs", 0.269, 24, "dax", attrs={"instance_type": "dax.r5.large"}, weight=0.2),
        Profile("AmazonDocDB", "Amazon DocumentDB (with MongoDB compatibility)", "Database Instance",
            "InstanceUsage:db.r5.large", "CreateDBInstance", "Hrs", 0.277, 24, "docdb",
            attrs={"instance_type": "db.r5.large", "database_engine": "DocumentDB"}, weight=0.4),
        Profile(
            "AmazonES",
            "Amazon Elasticsearch Service",
            "Elastic Search Instance",
            "ESInstance:r6g.large",
            "ESDomain",
            "Hrs",
            0.167,
            24,
            "es",
            attrs={
                "instance_type": "r6g.large.elasticsearch",
                "instance_family": "Memory optimized",
                "storage_media": "EBS",
            },
            commit="ri",
            weight=0.6,
        ),
    ]


def _simple(
    code: str,
    name: str,
    family: str,
    usage: str,
    op: str,
    unit: str,
    rate: float,
    qty: float,
    resource: str,
    weight: float = 0.4,
    steady: bool = False,
    **attrs: str,
) -> Profile:
    return Profile(code, name, family, usage, op, unit, rate, qty, resource, attrs=attrs, weight=weight,
                   steady=steady)


def _service_profiles() -> list[Profile]:
    ws: dict[str, Any] = {
        "bundle": "Performance",
        "bundle_description": "Performance",
        "license": "Included",
        "operating_system": "Windows",
        "rootvolume": "80 GB",
        "uservolume": "100 GB",
        "software_included": "Plus",
        "memory": "7.5 GB",
        "vcpu": "2",
    }
    lam = "AWS Lambda"
    return [
        Profile("AWSLambda", lam, "Serverless", "Lambda-GB-Second", "Invoke", "Lambda-GB-Second",
            0.0000166667, 4e5, "lambda", commit="sp", weight=1.5),
        Profile("AWSLambda", lam, "Serverless", "Lambda-GB-Second-ARM", "Invoke", "Lambda-GB-Second",
            0.0000133334, 2e5, "lambda", commit="sp", weight=0.6),
        Profile("AWSLambda", lam, "Serverless", "Request", "Invoke", "Requests", 0.0000002, 1e6, "lambda"),
        Profile("AWSLambda", lam, "Serverless", "Lambda-Edge-GB-Second", "Invoke", "Lambda-GB-Second",
            0.00005001, 5e4, "lambda", weight=0.2),
        Profile("AWSLambda", lam, "Data Transfer", "DataTransfer-Out-Bytes", "Invoke", "GB", 0.09, 10,
            "lambda", servicecode="AWSDataTransfer", weight=0.3),
        Profile("AmazonECS", "Amazon Elastic Container Service", "Compute", "Fargate-vCPU-Hours:perCPU",
            "FargateTask", "hours", 0.04048, 48, "ecstask", commit="sp", weight=1.0),
        Profile("AmazonECS", "Amazon Elastic Container Service", "Compute", "Fargate-GB-Hours", "FargateTask",
            "hours", 0.004445, 96, "ecstask", commit="sp", weight=1.0),
        Profile("AmazonECS", "Amazon Elastic Container Service", "Compute", "ECS-EC2-vCPU-Hours",
            "ECSTask-EC2", "vCPU-Hours", 0.0, 48, "ecstask", weight=0.5),
        Profile("AmazonEKS", "Amazon Elastic Container Service for Kubernetes", "Compute",
            "AmazonEKS-Hours:perCluster", "CreateOperation", "Hours", 0.1, 24, "eks", steady=True),
        Profile("AmazonEKS", "Amazon Elastic Container Service for Kubernetes", "Compute",
            "Fargate-vCPU-Hours:perCPU", "FargatePod", "hours", 0.04048, 24, "eks", commit="sp"),
        Profile("AmazonSageMaker", "Amazon SageMaker", "ML Instance", "Notebk:ml.t3.medium",
            "RunInstance:0002", "Hrs", 0.05, 10, "sagemaker", attrs={"instance_type": "ml.t3.medium"},
            commit="sp"),
        Profile("AmazonSageMaker", "Amazon SageMaker", "ML Instance", "Train:ml.g5.xlarge",
            "RunInstance:0004", "Hrs", 1.408, 6, "sagemaker", attrs={"instance_type": "ml.g5.xlarge"},
            commit="sp"),
        Profile("AmazonSageMaker", "Amazon SageMaker", "ML Instance", "Host:ml.m5.large", "RunInstance:0001",
            "Hrs", 0.115, 24, "sagemaker", attrs={"instance_type": "ml.m5.large"}, commit="sp"),
        Profile("AWSELB", "Elastic Load Balancing", "Load Balancer-Application", "LoadBalancerUsage",
            "LoadBalancing:Application", "Hrs", 0.0225, 24, "elb", steady=True, weight=0.8),
        Profile("AWSELB", "Elastic Load Balancing", "Load Balancer-Application", "LCUUsage",
            "LoadBalancing:Application", "LCU-Hrs", 0.008, 40, "elb:half", weight=0.8),
        Profile("AmazonVPC", "Amazon Virtual Private Cloud", "VpcEndpoint", "VpcEndpoint-Hours",
            "VpcEndpoint", "Hrs", 0.01, 24, "vpce", weight=0.4),
        Profile("AmazonVPC", "Amazon Virtual Private Cloud", "VpcEndpoint", "VpcEndpoint-Endpoint-Hour",
            "VpcEndpoint", "Hrs", 0.01, 24, "vpce", steady=True, weight=0.4),
        Profile("AmazonVPC", "Amazon Virtual Private Cloud", "VpcEndpoint", "VpcEndpoint-Endpoint-Bytes",
            "VpcEndpoint", "GB", 0.01, 0.5, "vpce:half", weight=0.2),
        _simple("AmazonVPC", "Amazon Virtual Private Cloud", "Transit Gateway", "TransitGateway-Hours",
            "TransitGatewayVPC", "hours", 0.05, 24, "tgw", group="AWSTransitGateway", attachment_type="VPC"),
        _simple("AmazonVPC", "Amazon Virtual Private Cloud", "Transit Gateway", "TransitGateway-Bytes",
            "TGWProcessedBytes", "GigaBytes", 0.02, 100, "tgw", group="AWSTransitGateway",
            attachment_type="VPC"),
        _simple("AWSNetworkFirewall", "AWS Network Firewall", "Network Firewall", "Endpoint-Hour",
            "NetworkFirewall", "Hrs", 0.395, 24, "nfw"),
        _simple("AWSNetworkFirewall", "AWS Network Firewall", "Network Firewall", "Traffic-GB-Processed",
            "NetworkFirewall", "GB", 0.065, 0.2, "nfw"),
        _simple("AmazonWorkSpaces", "Amazon WorkSpaces", "Amazon WorkSpaces", "AW-HW-2-AutoStop-Usage",
            "Hourly", "Hrs", 0.22, 9, "workspace", weight=0.6, steady=True, running_mode="AutoStop", **ws),
        _simple("AmazonWorkSpaces", "Amazon WorkSpaces", "Amazon WorkSpaces", "AW-HW-2-AlwaysOn-Usage",
            "Monthly", "Month", 1.9, 1, "workspace", running_mode="AlwaysOn", **ws),
        _simple("AmazonAppStream", "Amazon AppStream", "Streaming Instance", "Stream.standard.medium",
            "StreamingInstance", "Hrs", 0.1, 12, "appstream", instance_type="stream.standard.medium"),
        _simple("AmazonAthena", "Amazon Athena", "Athena Queries", "DataScannedInTB", "RunQuery", "Terabytes",
            5.0, 0.2, "athena"),
        _simple("ElasticMapReduce", "Amazon Elastic MapReduce", "Elastic Map Reduce Instance",
            "BoxUsage:m5.xlarge", "RunInstances", "Hrs", 0.048, 48, "emr", instance_type="m5.xlarge"),
        _simple("AWSGlue", "AWS Glue", "AWS Glue", "ETL-DPU-Hour", "jobrun", "DPU-Hour", 0.44, 10, "glue"),
        _simple("AWSGlue", "AWS Glue", "AWS Glue", "Crawler-DPU-Hour", "crawlerrun", "DPU-Hour", 0.44, 2,
            "glue"),
        _simple("AmazonKinesis", "Amazon Kinesis", "Kinesis Streams", "Storage-ShardHour", "shardHourStorage",
            "ShardHour", 0.015, 48, "kinesis"),
        _simple("AmazonKinesisFirehose", "Amazon Kinesis Firehose", "Kinesis Firehose", "BilledBytes",
            "PutRecordBatch", "GB", 0.029, 50, "firehose"),
        _simple("AmazonKinesisAnalytics", "Amazon Kinesis Analytics", "Kinesis Analytics", "KPU-Hour-Java",
            "StreamingApplication", "KPU-Hour", 0.11, 24, "kinesisanalytics"),
        _simple("AmazonKinesisVideo", "Amazon Kinesis Video", "Kinesis Video Streams", "DataIngested",
            "PutMedia", "GB", 0.0085, 30, "kinesisvideo", weight=0.2),
        _simple("AmazonMSK", "Amazon Managed Streaming for Apache Kafka",
            "Managed Streaming for Apache Kafka", "Kafka.m5.large", "RunBroker", "Hrs", 0.21, 72, "msk"),
        _simple("AmazonQuickSight", "Amazon QuickSight", "Business Analytics", "QS-User-Enterprise-Month",
            "QuickSightEnterprise", "Users", 0.8, 10, "quicksight", weight=0.2),
        _simple("AmazonMQ", "Amazon MQ", "Broker Instances", "BrokerUsage.mq.m5.large", "CreateBroker:0001",
            "Hrs", 0.288, 24, "mq", broker_engine="ActiveMQ", instance_type="mq.m5.large"),
        _simple("AmazonSES", "Amazon Simple Email Service", "Sending Email", "Recipients", "Send", "Count",
            0.0001, 20000, "ses"),
        _simple("AmazonSNS", "Amazon Simple Notification Service", "API Request", "Requests-Tier1", "Publish",
            "Requests", 0.0000005, 1e6, "sns"),
        _simple("AWSQueueService", "Amazon Simple Queue Service", "API Request", "Requests-RBP",
            "SendMessage", "Requests", 0.0000004, 2e6, "sqs"),
        _simple("AWSQueueService", "Amazon Simple Queue Service", "API Request", "Requests-FIFO-RBP",
            "SendMessage", "Requests", 0.0000005, 5e5, "sqs"),
        _simple("AmazonApiGateway", "Amazon API Gateway", "API Calls", "ApiGatewayRequest",
            "ApiGatewayRequest", "Requests", 0.0000035, 5e5, "apigw"),
        _simple("AmazonApiGateway", "Amazon API Gateway", "API Calls", "ApiGatewayHttpRequest",
            "ApiGatewayHttpApi", "Requests", 0.000001, 5e5, "apigw"),
        _simple("AWSAppSync", "AWS AppSync", "API Request", "AppSync-Query-Requests", "Query", "Requests",
            0.000004, 2e5, "appsync", weight=0.2),
        _simple("AWSEvents", "Amazon EventBridge", "EventBridge", "Event-64K-Chunks", "PutEvents", "Events",
            0.000001, 5e5, "events", weight=0.2),
        _simple("AmazonRekognition", "Amazon Rekognition", "Image Analysis", "Group1-ImagesProcessed",
            "DetectLabels", "Count", 0.001, 2000, "", weight=0.2),
        _simple("AmazonTextract", "Amazon Textract", "Textract", "PagesforDocumentText", "DetectDocumentText",
            "Page", 0.0015, 2000, "", weight=0.2),
        _simple("AmazonConnect", "Amazon Connect", "Contact Center", "end-customer-mins", "OutboundVoice",
            "minutes", 0.018, 600, "connect", weight=0.2),
        _simple("ContactCenterTelecomm", "Contact Center Telecommunications (service sold by AMCS, LLC) ",
            "Contact Center", "USE1-did-inbound-mins", "InboundVoice", "minutes", 0.0022, 800, "connect",
            weight=0.2),
        _simple("CodeBuild", "CodeBuild", "Compute", "Build-Min:Linux:g1.small", "Build", "Minutes", 0.005,
            300, "codebuild", weight=0.2),
        _simple("AmazonCloudWatch", "AmazonCloudWatch", "Metric", "CW:MetricMonitorUsage", "MetricStorage",
            "Metrics", 0.3, 50, "", weight=0.6),
        _simple("AmazonCloudWatch", "AmazonCloudWatch", "Data Payload", "DataProcessing-Bytes",
            "PutLogEvents", "GB", 0.5, 20, "loggroup", weight=0.6),
        _simple("AmazonCloudWatch", "AmazonCloudWatch", "Alarm", "CW:AlarmMonitorUsage", "Unknown", "Alarms",
            0.1, 30, "", weight=0.3),
        _simple("AWSCloudTrail", "AWS CloudTrail", "Management Tools - AWS CloudTrail Data Events Recorded",
            "DataEventsRecorded", "None", "Events", 0.000001, 1e6, "trail", weight=0.3),
        _simple("AWSConfig", "AWS Config", "Management Tools - AWS Config", "ConfigurationItemRecorded",
            "None", "ConfigurationItemRecorded", 0.003, 2000, "", weight=0.3),
        _simple("AWSConfig", "AWS Config", "Management Tools - AWS Config Rules", "ConfigRuleEvaluations",
            "None", "ConfigRuleEvaluations", 0.001, 3000, "", weight=0.2),
        _simple("AmazonGuardDuty", "Amazon GuardDuty", "Security Services", "PaidEventsAnalyzed", "None",
            "Events", 0.000004, 1e6, "", weight=0.3),
        _simple("AmazonCognito", "Amazon Cognito", "User Pool", "CognitoUserPoolsMAU", "CognitoUserPoolMAU",
            "MAU", 0.0055, 1000, "cognito", weight=0.2),
        _simple("awswaf", "AWS WAF", "Web Application Firewall", "WebACL", "WebACL", "WebACL", 0.16, 1, "waf",
            weight=0.2, group_description="Web ACL per month"),
        _simple("AWSShield", "AWS Shield", "Shield Advanced Monthly Fee", "Shield-Monthly-Fee", "None",
            "Month", 100.0, 0.033, "", weight=0.1),
        _simple("AWSShield", "AWS Shield", "Shield-DataTransfer", "Shield-DataTransfer-Out-Bytes", "None",
            "GB", 0.025, 20, "", weight=0.1),
        _simple("AWSDirectConnect", "AWS Direct Connect", "Direct Connect", "PortUsage:10G",
            "CreateConnection", "Hrs", 2.25, 24, "dxcon", weight=0.2, direct_connect_location="EqDC2",
            port_speed="10G", transfer_type="IntraRegion Inbound"),
        Profile("AmazonRoute53", "Amazon Route 53", "DNS Zone", "HostedZone", "", "HostedZone", 0.5, 0.03,
            "hostedzone", global_=True, weight=0.3),
        Profile("AmazonRoute53", "Amazon Route 53", "Domain Registration", "Route53-Domains", "RenewDomain",
            "Domains", 12.0, 0.03, "", global_=True, weight=0.1),
    ]


PROFILES: list[Profile] = (
    _ec2_profiles() + _transfer_profiles() + _storage_profiles() + _database_profiles() + _service_profiles()
)
# fmt: on
