//! The whole local world disposition-sync runs against: moto (with the state table, the DLQ, the
//! parking queue and the credentials secret) plus the CXone and Salesforce simulators, all on
//! 127.0.0.1. Integration tests start one per test; the `local-world` binary starts one for the
//! demo and for `cargo lambda watch`.

use crate::cxone::{CxoneApi, CxoneConfig, CxoneSim};
use crate::moto::Moto;
use crate::salesforce::{SalesforceConfig, SalesforceSim};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, QueueAttributeName};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// The region and credentials moto is called with; moto accepts any.
const REGION: &str = "us-east-1";
const ACCESS_KEY: &str = "test";
const SECRET_KEY: &str = "test";

/// How long [`queue_bodies`] hides the messages it has seen. Long enough to outlast the loop; if
/// the process dies mid-way they reappear on their own after this.
const PEEK_HIDE_SECONDS: i32 = 30;

/// An SDK configuration for moto at `endpoint`: region us-east-1 and static test credentials, all
/// set explicitly so that no region, credentials or endpoint from the host's environment or AWS
/// profile can send a test's calls anywhere else.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "local-world",
        ))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// The AWS resources of one world, named after its prefix.
#[derive(Clone, Debug)]
pub struct AwsResources {
    pub table: String,
    pub dlq_url: String,
    pub parking_url: String,
    pub secret_id: String,
}

/// Creates the state table `{prefix}-state` (`pk` S, on demand), the queues `{prefix}-dlq` and
/// `{prefix}-parking`, and the secret `{prefix}/credentials` holding `secret_json`.
///
/// # Panics
/// If moto refuses any of them (a prefix used twice, or moto gone): the world cannot exist.
pub async fn create_resources(sdk: &SdkConfig, prefix: &str, secret_json: &str) -> AwsResources {
    let table = format!("{prefix}-state");
    let ddb = aws_sdk_dynamodb::Client::new(sdk);
    ddb.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("name and type are set"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("name and key type are set"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create table {table}: {}", DisplayErrorContext(&e)));
    ddb.wait_until_table_exists()
        .table_name(&table)
        .wait(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "table {table} never became active: {}",
                DisplayErrorContext(&e)
            )
        });

    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut queue_urls = Vec::new();
    for name in [format!("{prefix}-dlq"), format!("{prefix}-parking")] {
        let created = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create queue {name}: {}", DisplayErrorContext(&e)));
        let url = created
            .queue_url()
            .unwrap_or_else(|| panic!("create queue {name}: no queue URL returned"));
        queue_urls.push(url.to_owned());
    }
    let [dlq_url, parking_url] =
        <[String; 2]>::try_from(queue_urls).expect("two queues were created");

    let secret_id = format!("{prefix}/credentials");
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(&secret_id)
        .secret_string(secret_json)
        .send()
        .await
        .unwrap_or_else(|e| panic!("create secret {secret_id}: {}", DisplayErrorContext(&e)));

    AwsResources {
        table,
        dlq_url,
        parking_url,
        secret_id,
    }
}

/// Every message body now in the queue, without consuming any (for assertions and the demo).
///
/// SQS has no "peek". The obvious trick, receiving with `VisibilityTimeout=0` in a loop, never
/// gets past the first ten messages on moto (it always answers with the oldest visible ones) and
/// is not guaranteed to reach every message on SQS either. So this receives with a short
/// visibility timeout, which hides each message it has seen and lets the next receive return new
/// ones, deduplicates by `MessageId`, stops once two receives in a row bring nothing new, and then
/// makes every seen message visible again (ChangeMessageVisibility 0). Messages stay in the queue;
/// their receive count goes up, so do not peek at a queue whose redrive policy counts receives.
///
/// # Panics
/// If SQS fails: a test helper cannot do anything more useful.
pub async fn queue_bodies(sdk: &SdkConfig, queue_url: &str) -> Vec<String> {
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let mut seen = HashSet::new();
    let mut bodies = Vec::new();
    // Latest receipt handle per message: only the newest one can change its visibility.
    let mut handles: HashMap<String, String> = HashMap::new();
    let mut idle_receives = 0;
    while idle_receives < 2 {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(PEEK_HIDE_SECONDS)
            .wait_time_seconds(0)
            .send()
            .await
            .unwrap_or_else(|e| panic!("receive from {queue_url}: {}", DisplayErrorContext(&e)));
        let mut new = 0;
        for message in received.messages() {
            let (Some(id), Some(handle)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            handles.insert(id.to_owned(), handle.to_owned());
            if seen.insert(id.to_owned()) {
                bodies.push(message.body().unwrap_or_default().to_owned());
                new += 1;
            }
        }
        idle_receives = if new == 0 { idle_receives + 1 } else { 0 };
    }

    let handles: Vec<String> = handles.into_values().collect();
    for chunk in handles.chunks(10) {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(handle)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt handle are set")
            })
            .collect();
        let output = sqs
            .change_message_visibility_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "restore visibility in {queue_url}: {}",
                    DisplayErrorContext(&e)
                )
            });
        assert!(
            output.failed().is_empty(),
            "restore visibility in {queue_url}: {:?}",
            output.failed()
        );
    }
    bodies
}

/// Messages in the queue, visible or not (`ApproximateNumberOfMessages` +
/// `ApproximateNumberOfMessagesNotVisible`). Exact on moto; approximate on SQS, as the names say.
///
/// # Panics
/// If SQS fails.
pub async fn queue_depth(sdk: &SdkConfig, queue_url: &str) -> usize {
    let output = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "queue attributes of {queue_url}: {}",
                DisplayErrorContext(&e)
            )
        });
    let attributes = output.attributes().cloned().unwrap_or_default();
    [
        QueueAttributeName::ApproximateNumberOfMessages,
        QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .map(|name| {
        let raw = attributes
            .get(name)
            .unwrap_or_else(|| panic!("{queue_url}: no {name} attribute"));
        raw.parse::<usize>()
            .unwrap_or_else(|_| panic!("{queue_url}: {name} is {raw:?}"))
    })
    .sum()
}

/// moto, both simulators and the AWS resources, wired together. Dropping it stops everything.
pub struct LocalWorld {
    pub moto: Moto,
    pub cxone: CxoneSim,
    pub salesforce: SalesforceSim,
    pub sdk: SdkConfig,
    pub aws: AwsResources,
}

impl LocalWorld {
    /// Starts a world whose AWS resources are named after `prefix` (unique per moto server), with
    /// simulators on their default settings and CXone speaking `api`. The secret holds the
    /// credentials both simulators accept, in the shape that API's source reads.
    pub async fn start(prefix: &str, api: CxoneApi) -> Result<LocalWorld, String> {
        Self::start_with(
            prefix,
            CxoneConfig::for_api(api),
            SalesforceConfig::default(),
        )
        .await
    }

    /// Like [`LocalWorld::start`], with simulators set up by `cxone` (whose `api` the world
    /// speaks) and `salesforce`. The secret holds the credentials the two configurations name.
    pub async fn start_with(
        prefix: &str,
        cxone: CxoneConfig,
        salesforce: SalesforceConfig,
    ) -> Result<LocalWorld, String> {
        let secret_json = serde_json::to_string(&Secret {
            cxone: CxoneSecret::of(&cxone),
            salesforce: ClientSecret {
                client_id: salesforce.client_id.clone(),
                client_secret: salesforce.client_secret.clone(),
            },
        })
        .map_err(|e| format!("cannot write the secret: {e}"))?;
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .map_err(|e| format!("starting moto panicked: {e}"))??;
        let cxone = CxoneSim::start(cxone).await;
        let salesforce = SalesforceSim::start(salesforce).await;
        let sdk = sdk_config(&moto.endpoint()).await;
        let aws = create_resources(&sdk, prefix, &secret_json).await;
        Ok(LocalWorld {
            moto,
            cxone,
            salesforce,
            sdk,
            aws,
        })
    }

    /// Gives every API request to either simulator a round trip of `round_trip` (zero: none),
    /// paid concurrently, as over a real network. moto, which stands in for AWS in the same
    /// region as the function, is left alone.
    pub fn set_round_trip(&self, round_trip: Duration) {
        self.cxone.network().set_round_trip(round_trip);
        self.salesforce.network().set_round_trip(round_trip);
    }

    /// Every environment variable the `disposition-sync` binary needs to run against this world.
    /// Retry delays and the minimum poll interval are shortened so that tests run quickly.
    pub fn env(&self) -> Vec<(String, String)> {
        let common = [
            ("AWS_ENDPOINT_URL", self.moto.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            // boto3 and the AWS CLI read this one rather than AWS_REGION.
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            // No instance metadata lookups (slow timeouts off EC2).
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("SECRET_ID", self.aws.secret_id.clone()),
            ("STATE_TABLE", self.aws.table.clone()),
            ("DLQ_URL", self.aws.dlq_url.clone()),
            ("PARKING_URL", self.aws.parking_url.clone()),
            ("SYNC_ID", "dispositions".to_owned()),
            ("SF_LOGIN_URL", self.salesforce.url()),
            ("RETRY_BASE_DELAY_MS", "10".to_owned()),
            ("MIN_POLL_INTERVAL_SECONDS", "0".to_owned()),
        ];
        // The Admin source discovers its token endpoint and API host from the issuer alone.
        let cxone = match self.cxone.api() {
            CxoneApi::Guide => ("CXONE_BASE_URL", self.cxone.url()),
            CxoneApi::Admin => ("CXONE_ISSUER", self.cxone.url()),
        };
        [("CXONE_API", self.cxone.api().as_str().to_owned()), cxone]
            .into_iter()
            .chain(common)
            .map(|(name, value)| (name.to_owned(), value))
            .collect()
    }
}

/// The function's credentials secret.
#[derive(Serialize)]
struct Secret {
    cxone: CxoneSecret,
    salesforce: ClientSecret,
}

#[derive(Serialize)]
struct ClientSecret {
    client_id: String,
    client_secret: String,
}

/// The guide source reads an OAuth client; the Admin source also the API user's access key.
#[derive(Serialize)]
#[serde(untagged)]
enum CxoneSecret {
    Guide(ClientSecret),
    Admin {
        client_id: String,
        client_secret: String,
        access_key_id: String,
        access_key_secret: String,
    },
}

impl CxoneSecret {
    fn of(config: &CxoneConfig) -> CxoneSecret {
        match config.api {
            CxoneApi::Guide => CxoneSecret::Guide(ClientSecret {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
            }),
            CxoneApi::Admin => CxoneSecret::Admin {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                access_key_id: config.access_key_id.clone(),
                access_key_secret: config.access_key_secret.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Admin secret adds the access key to the OAuth client; the guide's has the client only.
    #[test]
    fn the_secret_has_each_sources_shape() {
        let admin = serde_json::to_value(CxoneSecret::of(&CxoneConfig::admin())).unwrap();
        let keys: Vec<&String> = admin.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "access_key_id",
                "access_key_secret",
                "client_id",
                "client_secret"
            ]
        );
        assert!(admin["access_key_secret"].as_str().unwrap().ends_with('='));
        let guide = serde_json::to_value(CxoneSecret::of(&CxoneConfig::default())).unwrap();
        assert_eq!(
            guide,
            serde_json::json!({"client_id": "cx-client", "client_secret": "cx-secret"})
        );
    }
}
