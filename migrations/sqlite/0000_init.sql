CREATE TABLE `api_keys` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`key_hash` text NOT NULL,
	`gallery_id` integer,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	FOREIGN KEY (`gallery_id`) REFERENCES `galleries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_keys_key_hash_unique` ON `api_keys` (`key_hash`);--> statement-breakpoint
CREATE TABLE `faces` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`gallery_id` integer NOT NULL,
	`identity_id` integer NOT NULL,
	`photo_path` text,
	`photo_hash` text,
	`box` text,
	`keypoints` text,
	`quality` real,
	`embedding` blob NOT NULL,
	`created_at` integer NOT NULL,
	`deleted` integer DEFAULT false NOT NULL,
	`delete_seq` integer,
	FOREIGN KEY (`gallery_id`) REFERENCES `galleries`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`identity_id`) REFERENCES `identities`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `faces_gallery_id` ON `faces` (`gallery_id`,`id`);--> statement-breakpoint
CREATE INDEX `faces_identity` ON `faces` (`identity_id`);--> statement-breakpoint
CREATE INDEX `faces_gallery_photo_hash` ON `faces` (`gallery_id`,`photo_hash`);--> statement-breakpoint
CREATE INDEX `faces_gallery_delete_seq` ON `faces` (`gallery_id`,`delete_seq`);--> statement-breakpoint
CREATE TABLE `galleries` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`model_id` text NOT NULL,
	`model_version` text NOT NULL,
	`dimension` integer NOT NULL,
	`hnsw_m` integer NOT NULL,
	`hnsw_ef_construction` integer NOT NULL,
	`hnsw_ef` integer NOT NULL,
	`delete_seq` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `galleries_name_unique` ON `galleries` (`name`);--> statement-breakpoint
CREATE TABLE `identities` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`gallery_id` integer NOT NULL,
	`external_id` text NOT NULL,
	`display_name` text,
	`metadata` text,
	`created_at` integer NOT NULL,
	`deleted_at` integer,
	FOREIGN KEY (`gallery_id`) REFERENCES `galleries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `identities_gallery_external_live` ON `identities` (`gallery_id`,`external_id`) WHERE "identities"."deleted_at" IS NULL;--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`gallery_id` integer,
	`status` text NOT NULL,
	`total` integer,
	`done` integer DEFAULT 0 NOT NULL,
	`params` text,
	`result` text,
	`error` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`gallery_id`) REFERENCES `galleries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `jobs_status` ON `jobs` (`status`);--> statement-breakpoint
CREATE TABLE `model_thresholds` (
	`model_id` text NOT NULL,
	`far` real NOT NULL,
	`threshold` real NOT NULL,
	`impostor_pairs` integer NOT NULL,
	`genuine_pairs` integer NOT NULL,
	`tar` real,
	`calibrated_at` integer NOT NULL,
	PRIMARY KEY(`model_id`, `far`)
);
