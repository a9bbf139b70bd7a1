//! Closed sets of label values, as enums: a typo cannot become a new series.

use std::fmt;

macro_rules! label_values {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$variant_meta:meta])* $variant:ident => $value:literal,)+ }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value as exposed.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value,)+
                }
            }

            /// Position in [`Self::ALL`], for tables indexed by value.
            pub const fn index(self) -> usize {
                self as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

label_values! {
    /// Why a produce request failed (`streamhouse_producer_errors_total{error_type}`).
    ProducerError {
        /// The topic does not exist.
        TopicNotFound => "topic_not_found",
        /// The partition does not exist in the topic.
        PartitionNotFound => "partition_not_found",
        /// The request or a record in it is malformed.
        InvalidRecord => "invalid_record",
        /// A record exceeds the size limit.
        RecordTooLarge => "record_too_large",
        /// The write-ahead log or segment buffer refused the write.
        StorageFailure => "storage_failure",
        /// The request did not finish in time.
        Timeout => "timeout",
        /// Anything else.
        Internal => "internal",
    }
}

label_values! {
    /// Why a consume or group request failed (`streamhouse_consumer_errors_total{error_type}`).
    ConsumerError {
        /// The topic does not exist.
        TopicNotFound => "topic_not_found",
        /// The partition does not exist in the topic.
        PartitionNotFound => "partition_not_found",
        /// The requested offset is outside the partition's log.
        OffsetOutOfRange => "offset_out_of_range",
        /// The consumer group or member is unknown.
        GroupNotFound => "group_not_found",
        /// The request is malformed.
        InvalidRequest => "invalid_request",
        /// A server limit (groups, members per group) refused the request.
        LimitExceeded => "limit_exceeded",
        /// Reading a segment from storage failed.
        StorageFailure => "storage_failure",
        /// Anything else.
        Internal => "internal",
    }
}

label_values! {
    /// An object store operation (`streamhouse_s3_*{operation}`).
    S3Operation {
        /// Read an object or a byte range of it.
        Get => "get",
        /// Write a whole object.
        Put => "put",
        /// Delete an object.
        Delete => "delete",
        /// List objects under a prefix.
        List => "list",
        /// Read an object's metadata.
        Head => "head",
        /// Copy an object.
        Copy => "copy",
        /// Rename an object.
        Rename => "rename",
        /// A multipart upload (start, parts and completion count as one).
        MultipartUpload => "multipart_upload",
    }
}

label_values! {
    /// Why an object store operation failed (`streamhouse_s3_errors_total{error_type}`).
    S3Error {
        /// The object does not exist.
        NotFound => "not_found",
        /// The object already exists.
        AlreadyExists => "already_exists",
        /// A conditional request's precondition failed.
        Precondition => "precondition",
        /// The object was not modified since the given time or tag.
        NotModified => "not_modified",
        /// Credentials were refused for this object.
        PermissionDenied => "permission_denied",
        /// No valid credentials.
        Unauthenticated => "unauthenticated",
        /// The request timed out.
        Timeout => "timeout",
        /// The request was malformed (bad path, bad range).
        InvalidRequest => "invalid_request",
        /// The store does not support the operation.
        NotSupported => "not_supported",
        /// Anything else (network, server error).
        Other => "other",
    }
}

label_values! {
    /// What is wrong in the stored log (`streamhouse_storage_faults_total{fault}`).
    StorageFault {
        /// Offsets no segment holds, between two that exist.
        Hole => "hole",
        /// A segment cut short: its end (and checksum) missing.
        TornSegment => "torn_segment",
        /// A segment whose checksum or records do not match.
        CorruptSegment => "corrupt_segment",
        /// A topic with a manifest that recovery could not serve.
        UnrecoverableTopic => "unrecoverable_topic",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_lowercase_snake_case_and_indexed_in_order() {
        fn check(values: impl Iterator<Item = (usize, &'static str)>) {
            for (i, (index, value)) in values.enumerate() {
                assert_eq!(i, index);
                assert!(
                    value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                    "{value}"
                );
            }
        }
        check(ProducerError::ALL.iter().map(|v| (v.index(), v.as_str())));
        check(ConsumerError::ALL.iter().map(|v| (v.index(), v.as_str())));
        check(S3Operation::ALL.iter().map(|v| (v.index(), v.as_str())));
        check(StorageFault::ALL.iter().map(|v| (v.index(), v.as_str())));
        check(S3Error::ALL.iter().map(|v| (v.index(), v.as_str())));
        assert_eq!(S3Operation::MultipartUpload.to_string(), "multipart_upload");
    }
}
